"""legacy migration: identity map, quarantine, runs, applied CDC events, migration equity

Revision ID: 0011
Revises: 0014
Create Date: 2026-12-06 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOMAINS = "('users', 'accounts', 'transactions')"
KINDS_BEFORE = "('customer', 'external_settlement', 'fees', 'suspense')"
KINDS_AFTER = "('customer', 'external_settlement', 'fees', 'suspense', 'migration_equity')"


def _now() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.drop_constraint("ck_ledger_accounts_kind", "ledger_accounts", type_="check")
    op.create_check_constraint(
        "ck_ledger_accounts_kind", "ledger_accounts", f"kind IN {KINDS_AFTER}"
    )
    op.create_table(
        "migration_identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("domain", sa.String(length=16), nullable=False),
        sa.Column("legacy_id", sa.BigInteger(), nullable=False),
        sa.Column("new_id", sa.Uuid(), nullable=False),
        _now(),
        sa.CheckConstraint(f"domain IN {DOMAINS}", name="ck_migration_identities_domain"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("domain", "legacy_id", name="ux_migration_identities_domain_legacy"),
    )
    op.create_index(
        "ix_migration_identities_domain_new", "migration_identities", ["domain", "new_id"]
    )
    op.create_table(
        "migration_quarantine",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("domain", sa.String(length=16), nullable=False),
        sa.Column("legacy_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        _now(),
        sa.CheckConstraint(f"domain IN {DOMAINS}", name="ck_migration_quarantine_domain"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("domain", "legacy_id", name="ux_migration_quarantine_domain_legacy"),
    )
    op.create_table(
        "migration_runs",
        sa.Column("domain", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column("backfilled", sa.BigInteger(), nullable=False),
        sa.Column("quarantined", sa.BigInteger(), nullable=False),
        sa.Column("applied_events", sa.BigInteger(), nullable=False),
        sa.Column("backfill_cursor", sa.BigInteger(), nullable=False),
        sa.Column("cdc_cursor", sa.BigInteger(), nullable=False),
        sa.Column("verification", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("routes_before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("cutover_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(f"domain IN {DOMAINS}", name="ck_migration_runs_domain"),
        sa.CheckConstraint(
            "stage IN ('backfilling', 'catching_up', 'cut_over', 'finalized', 'aborted')",
            name="ck_migration_runs_stage",
        ),
        sa.PrimaryKeyConstraint("domain"),
    )
    op.create_table(
        "migration_applied_events",
        sa.Column("domain", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column(
            "applied_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("domain", "event_id"),
    )


def downgrade() -> None:
    op.drop_table("migration_applied_events")
    op.drop_table("migration_runs")
    op.drop_table("migration_quarantine")
    op.drop_index("ix_migration_identities_domain_new", table_name="migration_identities")
    op.drop_table("migration_identities")
    op.execute("DELETE FROM ledger_accounts WHERE kind = 'migration_equity' AND posted = 0")
    op.drop_constraint("ck_ledger_accounts_kind", "ledger_accounts", type_="check")
    op.create_check_constraint(
        "ck_ledger_accounts_kind", "ledger_accounts", f"kind IN {KINDS_BEFORE}"
    )
