"""The ledger's SQL: module-level text() objects, so the compiled form and the prepared
statement are reused.
"""

from __future__ import annotations

from sqlalchemy import text

_LOCK_ACCOUNTS = text(
    "SELECT id, kind, owner_user_id, name, number, currency, status, posted, held "
    "FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR NO KEY UPDATE"
)


_CLAIM_ENTRY = text(
    "INSERT INTO journal_entries (id, idempotency_key, request_hash, kind, description, "
    "created_at) VALUES (:id, :key, :hash, :kind, :description, :now) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)


# Claim the key and lock the accounts in one round trip. The EXISTS is an init plan evaluated
# before the scan, so the key is claimed (waiting for a concurrent holder) before any account
# is locked, as everywhere else; a conflict locks nothing and returns no rows.
_CLAIM_AND_LOCK = text(
    "WITH claim AS (INSERT INTO journal_entries (id, idempotency_key, request_hash, kind, "
    "description, created_at) VALUES (:id, :key, :hash, :kind, :description, :now) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id) "
    "SELECT id, kind, owner_user_id, name, number, currency, status, posted, held "
    "FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[])) "
    "AND EXISTS (SELECT 1 FROM claim) ORDER BY id FOR NO KEY UPDATE OF ledger_accounts"
)


_FIND_ENTRY = text(
    "SELECT id, request_hash, kind, description, created_at FROM journal_entries "
    "WHERE idempotency_key = :key"
)


_ENTRY_POSTINGS = text(
    "SELECT p.account_id, p.amount, p.currency, p.balance_after, t.id AS transaction_id "
    "FROM postings p LEFT JOIN transactions t "
    "ON t.journal_entry_id = p.entry_id AND t.account_id = p.account_id "
    "WHERE p.entry_id = :entry_id ORDER BY p.id"
)


# One round trip applies a whole entry: balances, postings, transaction rows and outbox events.
_APPLY_ENTRY = text(
    """
WITH acc AS (
    UPDATE ledger_accounts AS a
    SET posted = a.posted + d.dp, held = a.held + d.dh, updated_at = CAST(:now AS timestamptz)
    FROM unnest(CAST(:acc_ids AS uuid[]), CAST(:acc_dp AS bigint[]), CAST(:acc_dh AS bigint[]))
        AS d(id, dp, dh)
    WHERE a.id = d.id
), pst AS (
    INSERT INTO postings (entry_id, account_id, amount, currency, balance_after)
    SELECT CAST(:entry_id AS uuid), p.account_id, p.amount, p.currency, p.balance_after
    FROM unnest(CAST(:p_acc AS uuid[]), CAST(:p_amt AS bigint[]), CAST(:p_cur AS text[]),
                CAST(:p_bal AS bigint[]))
        WITH ORDINALITY AS p(account_id, amount, currency, balance_after, n)
    ORDER BY p.n
), txn AS (
    INSERT INTO transactions (id, account_id, user_id, journal_entry_id, kind, amount, currency,
        direction, status, counterparty, description, merchant, category, external_id,
        occurred_at, created_at, updated_at)
    SELECT t.id, t.account_id, t.user_id, CAST(:entry_id AS uuid), CAST(:kind AS text),
        t.amount, t.currency, t.direction, 'posted', t.counterparty, t.description, t.merchant,
        t.category, t.external_id, CAST(:occurred_at AS timestamptz),
        CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM unnest(CAST(:t_id AS uuid[]), CAST(:t_acc AS uuid[]), CAST(:t_user AS uuid[]),
                CAST(:t_amount AS bigint[]), CAST(:t_cur AS text[]), CAST(:t_dir AS text[]),
                CAST(:t_cp AS text[]), CAST(:t_desc AS text[]), CAST(:t_merchant AS text[]),
                CAST(:t_cat AS text[]), CAST(:t_ext AS text[]))
        AS t(id, account_id, user_id, amount, currency, direction, counterparty, description,
             merchant, category, external_id)
)
INSERT INTO outbox (topic, type, aggregate_id, user_id, payload, created_at)
SELECT CAST(:topic AS text), o.type, o.aggregate_id, o.user_id, CAST(o.payload AS jsonb),
    CAST(:now AS timestamptz)
FROM unnest(CAST(:o_type AS text[]), CAST(:o_agg AS uuid[]), CAST(:o_user AS uuid[]),
            CAST(:o_payload AS text[]))
    WITH ORDINALITY AS o(type, aggregate_id, user_id, payload, n)
ORDER BY o.n
"""
)


_UPDATE_HELD = text(
    "UPDATE ledger_accounts AS a SET held = a.held + d.dh, updated_at = :now "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:dh AS bigint[])) AS d(id, dh) WHERE a.id = d.id"
)


_INSERT_EVENTS = text(
    "INSERT INTO outbox (topic, type, aggregate_id, user_id, payload, created_at) "
    "SELECT CAST(:topic AS text), o.type, o.aggregate_id, o.user_id, CAST(o.payload AS jsonb), "
    "CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:o_type AS text[]), CAST(:o_agg AS uuid[]), CAST(:o_user AS uuid[]), "
    "CAST(:o_payload AS text[])) WITH ORDINALITY AS o(type, aggregate_id, user_id, payload, n) "
    "ORDER BY o.n"
)


_UPDATE_HOLD_TRANSACTIONS = text(
    "UPDATE transactions SET status = :status, updated_at = :now, "
    "amount = coalesce(CAST(:amount AS bigint), amount), "
    "journal_entry_id = coalesce(CAST(:entry_id AS uuid), journal_entry_id) "
    "WHERE hold_id = ANY(CAST(:ids AS uuid[])) RETURNING id, account_id, user_id, "
    "journal_entry_id, hold_id, kind, amount, currency, direction, status, counterparty, "
    "description, merchant, category, external_id, occurred_at"
)


_RECATEGORIZE = text(
    "UPDATE transactions SET category = CAST(:category AS text), updated_at = CASE "
    "WHEN category IS DISTINCT FROM CAST(:category AS text) THEN :now ELSE updated_at END "
    "WHERE id = :id AND (CAST(:owner AS uuid) IS NULL OR user_id = CAST(:owner AS uuid)) "
    "RETURNING id, account_id, user_id, journal_entry_id, hold_id, kind, amount, currency, "
    "direction, status, counterparty, description, merchant, category, external_id, "
    "occurred_at, created_at, updated_at"
)


_SELECT_HOLD = text(
    "SELECT h.id, h.account_id, h.counterparty_account_id, h.amount, h.currency, h.status, "
    "h.captured_amount, h.capture_entry_id, h.expires_at, h.created_at, h.resolved_at, "
    "h.request_hash, h.description, a.owner_user_id "
    "FROM holds h JOIN ledger_accounts a ON a.id = h.account_id "
    "WHERE h.id = :id FOR NO KEY UPDATE OF h"
)
