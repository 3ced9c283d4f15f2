"""analytics: the daily rollup kept by triggers on transactions, client events, monthly reports

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The rollup's grouping of a set of transaction rows `src` (with a `sign` column: +1 counts the
# row in, -1 takes it out). Only posted rows move money; pending, released, expired, failed and
# memo rows are not in the rollup. Days are UTC.
_DELTA = """
SELECT account_id, user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,
       coalesce(category, 'other') AS category, currency,
       coalesce(sum(sign * amount) FILTER (WHERE direction = 'credit'), 0) AS in_amount,
       coalesce(sum(sign) FILTER (WHERE direction = 'credit'), 0) AS in_count,
       coalesce(sum(sign * amount) FILTER (WHERE direction = 'debit'), 0) AS out_amount,
       coalesce(sum(sign) FILTER (WHERE direction = 'debit'), 0) AS out_count
FROM ({src}) AS src
WHERE status = 'posted'
GROUP BY 1, 2, 3, 4, 5
"""
_COLUMNS = "account_id, user_id, occurred_at, category, currency, amount, direction, status"
# Upsert in key order, so two statements touching the same rollup rows lock them in one order.
# Only deltas that add (every part >= 0) may insert: the CHECK is tested on the proposed row
# before ON CONFLICT resolves it. A delta that takes something away concerns a row that was
# counted, so its rollup row exists and a plain UPDATE applies it.
_UPSERT = """
INSERT INTO analytics_daily AS d (account_id, user_id, day, category, currency,
    in_amount, in_count, out_amount, out_count)
SELECT * FROM ({delta}) AS delta
WHERE in_count >= 0 AND out_count >= 0 AND in_amount >= 0 AND out_amount >= 0
  AND (in_count <> 0 OR out_count <> 0 OR in_amount <> 0 OR out_amount <> 0)
ORDER BY account_id, day, category
ON CONFLICT (account_id, day, category) DO UPDATE SET
    in_amount = d.in_amount + EXCLUDED.in_amount,
    in_count = d.in_count + EXCLUDED.in_count,
    out_amount = d.out_amount + EXCLUDED.out_amount,
    out_count = d.out_count + EXCLUDED.out_count
"""
_SUBTRACT = """
UPDATE analytics_daily AS d SET
    in_amount = d.in_amount + delta.in_amount,
    in_count = d.in_count + delta.in_count,
    out_amount = d.out_amount + delta.out_amount,
    out_count = d.out_count + delta.out_count
FROM (SELECT * FROM ({delta}) AS x
      WHERE in_count < 0 OR out_count < 0 OR in_amount < 0 OR out_amount < 0
      ORDER BY account_id, day, category) AS delta
WHERE d.account_id = delta.account_id AND d.day = delta.day AND d.category = delta.category
"""
# A recategorization or a delete can empty a rollup row: drop it, so the rollup stays as small
# as the data it sums.
_PRUNE = """
DELETE FROM analytics_daily d
USING (SELECT DISTINCT account_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,
           coalesce(category, 'other') AS category FROM old_rows) AS k
WHERE d.account_id = k.account_id AND d.day = k.day AND d.category = k.category
  AND d.in_count = 0 AND d.out_count = 0
"""


def _function(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body};\nRETURN NULL;\nEND $$"
    )


# The SQL below is assembled from the constant fragments above only.
_ON_INSERT = _UPSERT.format(
    delta=_DELTA.format(src=f"SELECT {_COLUMNS}, 1 AS sign FROM new_rows")  # noqa: S608
)
_CHANGED = _DELTA.format(
    src=f"SELECT {_COLUMNS}, 1 AS sign FROM new_rows "  # noqa: S608
    f"UNION ALL SELECT {_COLUMNS}, -1 AS sign FROM old_rows"
)
_ON_UPDATE = _SUBTRACT.format(delta=_CHANGED) + ";\n" + _UPSERT.format(delta=_CHANGED)
_ON_DELETE = _SUBTRACT.format(
    delta=_DELTA.format(src=f"SELECT {_COLUMNS}, -1 AS sign FROM old_rows")  # noqa: S608
)

# Statement-level triggers with transition tables: a posting's two legs (or a batch of
# recategorizations) pay for one small aggregate, in the writer's own transaction. Transition
# tables allow one event per trigger, hence three.
_TRIGGERS = (
    _function("analytics_rollup_insert", _ON_INSERT),
    _function("analytics_rollup_update", _ON_UPDATE + ";\n" + _PRUNE),
    _function("analytics_rollup_delete", _ON_DELETE + ";\n" + _PRUNE),
    "CREATE TRIGGER analytics_rollup_insert AFTER INSERT ON transactions "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION analytics_rollup_insert()",
    "CREATE TRIGGER analytics_rollup_update AFTER UPDATE ON transactions "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION analytics_rollup_update()",
    "CREATE TRIGGER analytics_rollup_delete AFTER DELETE ON transactions "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION analytics_rollup_delete()",
)

_APPEND_ONLY = (
    """
CREATE FUNCTION analytics_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'analytics_events does not allow %: it is append-only', TG_OP;
END $$
""",
    "CREATE TRIGGER analytics_events_append_only BEFORE UPDATE OR DELETE ON analytics_events "
    "FOR EACH ROW EXECUTE FUNCTION analytics_events_append_only()",
)


def upgrade() -> None:
    op.create_table(
        "analytics_daily",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("in_amount", sa.BigInteger(), nullable=False),
        sa.Column("in_count", sa.BigInteger(), nullable=False),
        sa.Column("out_amount", sa.BigInteger(), nullable=False),
        sa.Column("out_count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "in_amount >= 0 AND out_amount >= 0 AND in_count >= 0 AND out_count >= 0",
            name="ck_analytics_daily_non_negative",
        ),
        sa.ForeignKeyConstraint(["account_id"], ["ledger_accounts.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("account_id", "day", "category"),
    )
    op.create_index("ix_analytics_daily_user_day", "analytics_daily", ["user_id", "day"])
    op.create_table(
        "analytics_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("client_event_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "client_event_id", name="ux_analytics_events_client_id"),
    )
    op.create_index(
        "ix_analytics_events_user_received", "analytics_events", ["user_id", "received_at"]
    )
    op.create_table(
        "monthly_reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("figures", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("narrative", sa.Text(), server_default="", nullable=False),
        sa.Column("narrative_source", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('computed', 'narrated', 'ready')", name="ck_monthly_reports_status"
        ),
        sa.CheckConstraint("extract(day FROM month) = 1", name="ck_monthly_reports_month_first"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "month", name="ux_monthly_reports_user_month"),
    )
    op.create_index(
        "ix_monthly_reports_user_month_id", "monthly_reports", ["user_id", "month", "id"]
    )
    for statement in (*_TRIGGERS, *_APPEND_ONLY):
        op.execute(statement)
    # Backfill: the rollup of every posted transaction already there (the triggers, created
    # above in this same transaction, keep it from here on).
    op.execute(
        _UPSERT.format(
            delta=_DELTA.format(src=f"SELECT {_COLUMNS}, 1 AS sign FROM transactions")  # noqa: S608
        )
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER analytics_events_append_only ON analytics_events")
    op.execute("DROP FUNCTION analytics_events_append_only()")
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER analytics_rollup_{event} ON transactions")
        op.execute(f"DROP FUNCTION analytics_rollup_{event}()")
    op.drop_index("ix_monthly_reports_user_month_id", table_name="monthly_reports")
    op.drop_table("monthly_reports")
    op.drop_index("ix_analytics_events_user_received", table_name="analytics_events")
    op.drop_table("analytics_events")
    op.drop_index("ix_analytics_daily_user_day", table_name="analytics_daily")
    op.drop_table("analytics_daily")
