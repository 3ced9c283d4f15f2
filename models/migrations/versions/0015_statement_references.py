"""ledger references checked once per statement instead of once per row (decision 90)

The foreign keys from postings, transactions and the analytics rollup cost one SPI query and
one row lock per inserted row: 10 to 14 of them for a two-leg transfer, 60-80% of the batch
posting path's statement time. What they guard is checked here per statement, set-based, from
the statement's transition table. It stays sound without the per-row locks because the rows
referred to cannot go away or change their key: journal entries are immutable, ledger accounts
refuse DELETE and (from here) a change of id, and a transaction's user must be its account's
owner, which is fixed and itself a foreign key to users.

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-06 21:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, constraint, column, referred table): the foreign keys this migration replaces.
_REPLACED = (
    ("postings", "postings_entry_id_fkey", "entry_id", "journal_entries"),
    ("postings", "postings_account_id_fkey", "account_id", "ledger_accounts"),
    ("transactions", "transactions_account_id_fkey", "account_id", "ledger_accounts"),
    ("transactions", "transactions_user_id_fkey", "user_id", "users"),
    ("transactions", "transactions_journal_entry_id_fkey", "journal_entry_id", "journal_entries"),
    ("analytics_daily", "analytics_daily_account_id_fkey", "account_id", "ledger_accounts"),
    ("analytics_daily", "analytics_daily_user_id_fkey", "user_id", "users"),
)

# Each row's referent is looked up by a scalar subquery, which PostgreSQL runs per row as an
# index probe and never turns into a join. The plans of a trigger function are made once per
# connection and kept; `enable_seqscan = off` keeps them index probes even when they were first
# made while the tables were tiny (a plan with a sequential scan would then be kept as the
# tables grow). Measured: a hash anti-join plan kept from the first, large statement cost the
# single path more than the foreign keys did.
_POSTINGS_REFER = """
CREATE FUNCTION postings_refer() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    bad text;
BEGIN
    SELECT CASE WHEN (SELECT e.id FROM journal_entries e WHERE e.id = n.entry_id) IS NULL
                THEN 'journal entry ' || n.entry_id ELSE 'account ' || n.account_id END
        INTO bad FROM new_postings n
        WHERE (SELECT e.id FROM journal_entries e WHERE e.id = n.entry_id) IS NULL
           OR (SELECT a.id FROM ledger_accounts a WHERE a.id = n.account_id) IS NULL
        LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'a posting refers to %, which does not exist', bad
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$
"""

# A transaction's user is its account's owner: checking the pair is stronger than the two
# foreign keys it replaces, and the owner's own foreign key keeps the user from going away.
_TRANSACTIONS_REFER = """
CREATE FUNCTION transactions_refer() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT n.id INTO bad FROM new_rows n
        WHERE (SELECT a.owner_user_id FROM ledger_accounts a WHERE a.id = n.account_id)
                IS DISTINCT FROM n.user_id
           OR (n.journal_entry_id IS NOT NULL
               AND (SELECT e.id FROM journal_entries e WHERE e.id = n.journal_entry_id) IS NULL)
        LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'transaction % refers to an account, owner or journal entry that does '
            'not exist', bad USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$
"""

# Updates that move a transaction to another account, user or entry are rare (a hold's capture
# sets its entry): a row trigger on those columns only, so status and category changes pay
# nothing.
_TRANSACTION_REFERS = """
CREATE FUNCTION transaction_refers() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
BEGIN
    IF (SELECT a.owner_user_id FROM ledger_accounts a WHERE a.id = NEW.account_id)
            IS DISTINCT FROM NEW.user_id
       OR (NEW.journal_entry_id IS NOT NULL
           AND (SELECT e.id FROM journal_entries e WHERE e.id = NEW.journal_entry_id) IS NULL) THEN
        RAISE EXCEPTION 'transaction % refers to an account, owner or journal entry that does '
            'not exist', NEW.id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$
"""

_IDENTITY_FIXED = """
CREATE OR REPLACE FUNCTION ledger_account_identity_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id
       OR NEW.kind IS DISTINCT FROM OLD.kind
       OR NEW.currency IS DISTINCT FROM OLD.currency
       OR NEW.owner_user_id IS DISTINCT FROM OLD.owner_user_id
       OR NEW.number IS DISTINCT FROM OLD.number THEN
        RAISE EXCEPTION 'id, kind, currency, owner and number of an account are fixed';
    END IF;
    RETURN NEW;
END $$
"""


def upgrade() -> None:
    for table, constraint, _column, _referred in _REPLACED:
        op.drop_constraint(constraint, table, type_="foreignkey")
    op.execute(_POSTINGS_REFER)
    op.execute(
        "CREATE TRIGGER postings_refer AFTER INSERT ON postings "
        "REFERENCING NEW TABLE AS new_postings "
        "FOR EACH STATEMENT EXECUTE FUNCTION postings_refer()"
    )
    op.execute(_TRANSACTIONS_REFER)
    op.execute(
        "CREATE TRIGGER transactions_refer AFTER INSERT ON transactions "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION transactions_refer()"
    )
    op.execute(_TRANSACTION_REFERS)
    op.execute(
        "CREATE TRIGGER transaction_refers BEFORE UPDATE OF account_id, user_id, "
        "journal_entry_id ON transactions FOR EACH ROW EXECUTE FUNCTION transaction_refers()"
    )
    # The balance check's per-entry count of postings is kept per connection too (see above).
    op.execute("ALTER FUNCTION postings_balanced() SET enable_seqscan = off")
    # The foreign keys kept an account's id from changing while anything referred to it.
    op.execute(_IDENTITY_FIXED)
    op.execute("DROP TRIGGER ledger_accounts_identity_fixed ON ledger_accounts")
    op.execute(
        "CREATE TRIGGER ledger_accounts_identity_fixed "
        "BEFORE UPDATE OF id, kind, currency, owner_user_id, number ON ledger_accounts "
        "FOR EACH ROW EXECUTE FUNCTION ledger_account_identity_fixed()"
    )


def downgrade() -> None:
    op.execute("ALTER FUNCTION postings_balanced() RESET enable_seqscan")
    op.execute("DROP TRIGGER ledger_accounts_identity_fixed ON ledger_accounts")
    op.execute(
        "CREATE TRIGGER ledger_accounts_identity_fixed "
        "BEFORE UPDATE OF kind, currency, owner_user_id, number ON ledger_accounts "
        "FOR EACH ROW EXECUTE FUNCTION ledger_account_identity_fixed()"
    )
    op.execute("DROP TRIGGER transaction_refers ON transactions")
    op.execute("DROP FUNCTION transaction_refers()")
    op.execute("DROP TRIGGER transactions_refer ON transactions")
    op.execute("DROP FUNCTION transactions_refer()")
    op.execute("DROP TRIGGER postings_refer ON postings")
    op.execute("DROP FUNCTION postings_refer()")
    for table, constraint, column, referred in _REPLACED:
        op.create_foreign_key(constraint, table, referred, [column], ["id"], ondelete="RESTRICT")
