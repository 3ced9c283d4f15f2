"""transactions: `memo` status for a customer's own notes, which never point at money

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "status IN ('pending', 'posted', 'released', 'expired', 'failed')"
_NEW = "status IN ('pending', 'posted', 'released', 'expired', 'failed', 'memo')"


def upgrade() -> None:
    op.drop_constraint("ck_transactions_status", "transactions", type_="check")
    op.create_check_constraint("ck_transactions_status", "transactions", _NEW)
    op.create_check_constraint(
        "ck_transactions_memo_moves_no_money",
        "transactions",
        "status <> 'memo' OR (journal_entry_id IS NULL AND hold_id IS NULL)",
    )


def downgrade() -> None:
    op.execute("DELETE FROM transactions WHERE status = 'memo'")
    op.drop_constraint("ck_transactions_memo_moves_no_money", "transactions", type_="check")
    op.drop_constraint("ck_transactions_status", "transactions", type_="check")
    op.create_check_constraint("ck_transactions_status", "transactions", _OLD)
