"""The double-entry ledger as a service package: plain async functions on the caller's session.

Every operation takes the caller's `AsyncSession` (the API, ops commands and the activities all
call them) and runs inside the caller's transaction; on a `LedgerError` the caller must roll
that transaction back. `LedgerActivities` (in `activities.ledger.activities`) wraps the ones the
workflows call: one activity = one transaction.

Idempotency: operations that create something carry an idempotency key stored under a unique
constraint with a fingerprint of the request; a retry returns the first result (rebuilt from the
rows) and the same key with a different request raises `IdempotencyKeyReused`. Operations on an
existing object are keyed by that object (a hold is resolved once, an account closed once).

Locking (deadlock freedom): idempotency keys are claimed first, then hold rows, then accounts in
ascending id order with SELECT ... FOR NO KEY UPDATE. That is FOR UPDATE minus the key lock: it
serialises ledger writers exactly the same way but does not block the KEY SHARE locks that
foreign-key checks take (e.g. inserting a hold that references the settlement account), which
with plain FOR UPDATE would create lock-order cycles. Balances are validated under those locks;
CHECK constraints back the invariants. Each balance change writes `transaction.created` /
`transaction.updated` and `balance.updated` events to the outbox in the same transaction.

Modules: `errors` (rejection types and their problems), `validation`, `sql`, `events`, `engine`
(the posting engine), `accounts`, `entries`, `batch` (many entries in one transaction, for
migrations and imports), `holds`, `closure`, `transactions`, `verify` (the invariant check) and
`activities`.
"""

from activities.ledger.accounts import (
    ensure_system_accounts,
    is_valid_account_number,
    luhn_check_digit,
    new_account_number,
    open_account,
    open_accounts,
)
from activities.ledger.batch import MAX_BATCH_ENTRIES, post_entries
from activities.ledger.closure import close_account
from activities.ledger.entries import (
    fund_account,
    post_entry,
    record_external_transaction,
    transfer,
)
from activities.ledger.errors import (
    ACCOUNT_CLOSED,
    ACCOUNT_NOT_EMPTY,
    CURRENCY_MISMATCH,
    HOLD_ALREADY_RESOLVED,
    HOLD_EXPIRED,
    IDEMPOTENCY_KEY_REUSED,
    INSUFFICIENT_FUNDS,
    INVALID_AMOUNT,
    INVALID_CATEGORY,
    INVALID_REQUEST,
    INVALID_SWEEP_TARGET,
    LEDGER_ERROR_TYPES,
    UNBALANCED_ENTRY,
    UNKNOWN_ACCOUNT,
    UNKNOWN_CURRENCY,
    UNKNOWN_HOLD,
    UNKNOWN_TRANSACTION,
    UNKNOWN_USER,
    LedgerError,
)
from activities.ledger.holds import capture_hold, expire_holds, place_hold, release_hold
from activities.ledger.transactions import recategorize_transaction
from activities.ledger.validation import MAX_BALANCE, MAX_HOLD_TTL_SECONDS, MAX_LEGS

__all__ = [
    "ACCOUNT_CLOSED",
    "ACCOUNT_NOT_EMPTY",
    "CURRENCY_MISMATCH",
    "HOLD_ALREADY_RESOLVED",
    "HOLD_EXPIRED",
    "IDEMPOTENCY_KEY_REUSED",
    "INSUFFICIENT_FUNDS",
    "INVALID_AMOUNT",
    "INVALID_CATEGORY",
    "INVALID_REQUEST",
    "INVALID_SWEEP_TARGET",
    "LEDGER_ERROR_TYPES",
    "MAX_BALANCE",
    "MAX_BATCH_ENTRIES",
    "MAX_HOLD_TTL_SECONDS",
    "MAX_LEGS",
    "UNBALANCED_ENTRY",
    "UNKNOWN_ACCOUNT",
    "UNKNOWN_CURRENCY",
    "UNKNOWN_HOLD",
    "UNKNOWN_TRANSACTION",
    "UNKNOWN_USER",
    "LedgerError",
    "capture_hold",
    "close_account",
    "ensure_system_accounts",
    "expire_holds",
    "fund_account",
    "is_valid_account_number",
    "luhn_check_digit",
    "new_account_number",
    "open_account",
    "open_accounts",
    "place_hold",
    "post_entries",
    "post_entry",
    "recategorize_transaction",
    "record_external_transaction",
    "release_hold",
    "transfer",
]
