"""ledger: accounts, journal entries, postings, holds, transactions, outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 14:23:58.195880
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journal_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("aggregate_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=True),
        sa.Column("owner_user_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("number", sa.String(length=12), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("posted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("held", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(kind = 'customer') = (owner_user_id IS NOT NULL AND number IS NOT NULL"
            " AND type IS NOT NULL)",
            name="ck_ledger_accounts_customer_fields",
        ),
        sa.CheckConstraint(
            "(status = 'closed') = (closed_at IS NOT NULL)", name="ck_ledger_accounts_closed_at"
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_ledger_accounts_currency"),
        sa.CheckConstraint(
            "kind <> 'customer' OR posted - held >= 0",
            name="ck_ledger_accounts_customer_available_non_negative",
        ),
        sa.CheckConstraint(
            "kind IN ('customer', 'external_settlement', 'fees', 'suspense')",
            name="ck_ledger_accounts_kind",
        ),
        sa.CheckConstraint(
            "status = 'open' OR (posted = 0 AND held = 0)",
            name="ck_ledger_accounts_closed_is_empty",
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_ledger_accounts_status"),
        sa.CheckConstraint(
            "type IS NULL OR type IN ('checking', 'savings')", name="ck_ledger_accounts_type"
        ),
        sa.CheckConstraint("held >= 0", name="ck_ledger_accounts_held_non_negative"),
        sa.ForeignKeyConstraint(["owner_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
        sa.UniqueConstraint("number"),
    )
    op.create_index(
        op.f("ix_ledger_accounts_owner_user_id"), "ledger_accounts", ["owner_user_id"], unique=False
    )
    op.create_index(
        "ux_ledger_accounts_system_kind_currency",
        "ledger_accounts",
        ["kind", "currency"],
        unique=True,
        postgresql_where=sa.text("kind <> 'customer'"),
    )
    op.create_table(
        "holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("counterparty_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("captured_amount", sa.BigInteger(), nullable=True),
        sa.Column("capture_entry_id", sa.Uuid(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("merchant", sa.String(length=200), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'captured')"
            " = (captured_amount IS NOT NULL AND capture_entry_id IS NOT NULL)",
            name="ck_holds_captured_fields",
        ),
        sa.CheckConstraint(
            "(status = 'pending') = (resolved_at IS NULL)", name="ck_holds_resolved_at"
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_holds_currency"),
        sa.CheckConstraint(
            "status IN ('pending', 'captured', 'released', 'expired')", name="ck_holds_status"
        ),
        sa.CheckConstraint("amount > 0", name="ck_holds_amount_positive"),
        sa.CheckConstraint(
            "captured_amount IS NULL OR (captured_amount > 0 AND captured_amount <= amount)",
            name="ck_holds_captured_amount",
        ),
        sa.ForeignKeyConstraint(["account_id"], ["ledger_accounts.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["capture_entry_id"], ["journal_entries.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(
            ["counterparty_account_id"], ["ledger_accounts.id"], ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index(op.f("ix_holds_account_id"), "holds", ["account_id"], unique=False)
    op.create_index(
        "ix_holds_pending_expires_at",
        "holds",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "postings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_postings_currency"),
        sa.CheckConstraint("amount <> 0", name="ck_postings_amount_non_zero"),
        sa.ForeignKeyConstraint(["account_id"], ["ledger_accounts.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["entry_id"], ["journal_entries.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_postings_account_id_id", "postings", ["account_id", "id"], unique=False)
    op.create_index(
        "ux_postings_entry_account", "postings", ["entry_id", "account_id"], unique=True
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("journal_entry_id", sa.Uuid(), nullable=True),
        sa.Column("hold_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("direction", sa.String(length=6), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("counterparty", sa.String(length=200), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("merchant", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
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
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed(
                "to_tsvector('english'::regconfig, "
                "coalesce(description, '') || ' ' || coalesce(merchant, ''))",
                persisted=True,
            ),
            nullable=True,
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_transactions_currency"),
        sa.CheckConstraint("direction IN ('debit', 'credit')", name="ck_transactions_direction"),
        sa.CheckConstraint(
            "status IN ('pending', 'posted', 'released', 'expired', 'failed')",
            name="ck_transactions_status",
        ),
        sa.CheckConstraint("amount > 0", name="ck_transactions_amount_positive"),
        sa.ForeignKeyConstraint(["account_id"], ["ledger_accounts.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["hold_id"], ["holds.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["journal_entry_id"], ["journal_entries.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_transactions_account_occurred",
        "transactions",
        ["account_id", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_transactions_hold_id",
        "transactions",
        ["hold_id"],
        unique=False,
        postgresql_where=sa.text("hold_id IS NOT NULL"),
    )
    op.create_index(
        op.f("ix_transactions_journal_entry_id"), "transactions", ["journal_entry_id"], unique=False
    )
    op.create_index(
        "ix_transactions_search", "transactions", ["search"], unique=False, postgresql_using="gin"
    )
    op.create_index(
        "ix_transactions_user_occurred",
        "transactions",
        ["user_id", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        "ux_transactions_account_external_id",
        "transactions",
        ["account_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )

    # Journal entries and postings are immutable: corrections are new entries.
    op.execute(
        """
        CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% does not allow %: the ledger is append-only', TG_TABLE_NAME, TG_OP;
        END $$
        """
    )
    for table in ("journal_entries", "postings"):
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_immutable()"
        )

    # Every entry's postings are inserted by one statement and sum to zero per currency; an
    # entry that already has postings takes no more. Statement-level with a transition table,
    # so a two-leg transfer pays for one small aggregate, not a query per row.
    op.execute(
        """
        CREATE FUNCTION postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            bad uuid;
        BEGIN
            SELECT entry_id INTO bad FROM new_postings
                GROUP BY entry_id, currency HAVING sum(amount) <> 0 LIMIT 1;
            IF bad IS NOT NULL THEN
                RAISE EXCEPTION 'journal entry % does not balance', bad
                    USING ERRCODE = 'check_violation';
            END IF;
            SELECT n.entry_id INTO bad
                FROM (SELECT entry_id, count(*) AS legs FROM new_postings GROUP BY entry_id) n
                WHERE (SELECT count(*) FROM postings p WHERE p.entry_id = n.entry_id) <> n.legs
                LIMIT 1;
            IF bad IS NOT NULL THEN
                RAISE EXCEPTION 'journal entry % already has postings', bad
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER postings_balanced AFTER INSERT ON postings "
        "REFERENCING NEW TABLE AS new_postings "
        "FOR EACH STATEMENT EXECUTE FUNCTION postings_balanced()"
    )

    # An account's identity never changes (its postings would stop making sense). Only fires
    # when these columns are SET, so balance updates pay nothing.
    op.execute(
        """
        CREATE FUNCTION ledger_account_identity_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.kind IS DISTINCT FROM OLD.kind
               OR NEW.currency IS DISTINCT FROM OLD.currency
               OR NEW.owner_user_id IS DISTINCT FROM OLD.owner_user_id
               OR NEW.number IS DISTINCT FROM OLD.number THEN
                RAISE EXCEPTION 'kind, currency, owner and number of an account are fixed';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_accounts_identity_fixed "
        "BEFORE UPDATE OF kind, currency, owner_user_id, number ON ledger_accounts "
        "FOR EACH ROW EXECUTE FUNCTION ledger_account_identity_fixed()"
    )
    op.execute(
        "CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts "
        "FOR EACH ROW EXECUTE FUNCTION ledger_immutable()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER ledger_accounts_no_delete ON ledger_accounts")
    op.execute("DROP TRIGGER ledger_accounts_identity_fixed ON ledger_accounts")
    op.execute("DROP FUNCTION ledger_account_identity_fixed()")
    op.execute("DROP TRIGGER postings_balanced ON postings")
    op.execute("DROP FUNCTION postings_balanced()")
    op.execute("DROP TRIGGER postings_immutable ON postings")
    op.execute("DROP TRIGGER journal_entries_immutable ON journal_entries")
    op.execute("DROP FUNCTION ledger_immutable()")

    op.drop_index(
        "ux_transactions_account_external_id",
        table_name="transactions",
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.drop_index("ix_transactions_user_occurred", table_name="transactions")
    op.drop_index("ix_transactions_search", table_name="transactions", postgresql_using="gin")
    op.drop_index(op.f("ix_transactions_journal_entry_id"), table_name="transactions")
    op.drop_index(
        "ix_transactions_hold_id",
        table_name="transactions",
        postgresql_where=sa.text("hold_id IS NOT NULL"),
    )
    op.drop_index("ix_transactions_account_occurred", table_name="transactions")
    op.drop_table("transactions")
    op.drop_index("ux_postings_entry_account", table_name="postings")
    op.drop_index("ix_postings_account_id_id", table_name="postings")
    op.drop_table("postings")
    op.drop_index(
        "ix_holds_pending_expires_at",
        table_name="holds",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(op.f("ix_holds_account_id"), table_name="holds")
    op.drop_table("holds")
    op.drop_index(
        "ux_ledger_accounts_system_kind_currency",
        table_name="ledger_accounts",
        postgresql_where=sa.text("kind <> 'customer'"),
    )
    op.drop_index(op.f("ix_ledger_accounts_owner_user_id"), table_name="ledger_accounts")
    op.drop_table("ledger_accounts")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox")
    op.drop_table("journal_entries")
