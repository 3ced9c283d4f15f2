"""events: outbox rows wake the relay (NOTIFY); payment status changes write their own events

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One NOTIFY per inserting statement (not per row): the relay only needs to know "there is
# work"; it reads the rows itself. NOTIFY is delivered at commit, so the relay never wakes for
# rows it cannot see yet.
_OUTBOX_NOTIFY = (
    """
CREATE FUNCTION vortex_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vortex_outbox', '');
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION vortex_outbox_notify()
""",
)

# Every write of a payment's status, by whichever activity, route or ops command makes it, adds
# its event in the same transaction: no code path can change a status and forget the event.
_PAYMENT_EVENTS = (
    """
CREATE FUNCTION vortex_payment_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_type text;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NULL;
    END IF;
    event_type := CASE
        WHEN TG_OP = 'INSERT' THEN 'payment.initiated'
        WHEN NEW.status = 'completed' THEN 'payment.completed'
        WHEN NEW.status IN ('failed', 'rejected') THEN 'payment.failed'
        WHEN NEW.status = 'cancelled' THEN 'payment.cancelled'
        WHEN NEW.status = 'requires_action' THEN 'payment.requires_action'
        ELSE 'payment.updated'
    END;
    INSERT INTO outbox (topic, type, aggregate_id, user_id, payload, created_at)
    VALUES ('payment.events', event_type, NEW.id, NEW.user_id, jsonb_build_object(
        'payment_id', NEW.id,
        'user_id', NEW.user_id,
        'kind', NEW.kind,
        'status', NEW.status,
        'account_id', NEW.from_account_id,
        'to_account_id', NEW.to_account_id,
        'amount', NEW.amount,
        'currency', NEW.currency,
        'failure_reason', NEW.failure_reason,
        'updated_at', NEW.updated_at
    ), now());
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER payment_events AFTER INSERT OR UPDATE OF status ON payments
    FOR EACH ROW EXECUTE FUNCTION vortex_payment_event()
""",
)


def upgrade() -> None:
    for statement in (*_OUTBOX_NOTIFY, *_PAYMENT_EVENTS):
        op.execute(statement)
    op.create_index(
        "ix_outbox_published_at",
        "outbox",
        ["published_at"],
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.execute("DROP TRIGGER payment_events ON payments")
    op.execute("DROP FUNCTION vortex_payment_event()")
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION vortex_outbox_notify()")
