"""The posting engine of the double-entry ledger, and its Temporal activities.

Every operation is a plain async function taking the caller's `AsyncSession` (the API, ops
funding and the activities all call them) and running inside the caller's transaction; on a
`LedgerError` the caller must roll that transaction back. `LedgerActivities` wraps each function
as an activity: one activity = one transaction.

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
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from pydantic import BaseModel
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.categorize import CATEGORIES, categorize
from core.db import SessionFactory, transaction
from models.audit import record_audit
from models.base import utcnow
from models.ledger.payloads import (
    CaptureHoldInput,
    CloseAccountInput,
    ClosedAccount,
    EnsureSystemAccountsInput,
    EntryLeg,
    EntryResult,
    ExpireHoldsInput,
    ExpireHoldsResult,
    ExternalEntryInput,
    ExternalTransactionResult,
    FundAccountInput,
    LedgerTransferInput,
    OpenAccountInput,
    OpenedAccount,
    PlacedHold,
    PlaceHoldInput,
    PostEntryInput,
    PostingResult,
    RecategorizeInput,
    ReleaseHoldInput,
    ResolvedHold,
    SystemAccounts,
    TransactionRecord,
)
from models.ledger.tables import (
    SYSTEM_KINDS,
    TRANSACTION_EVENTS_TOPIC,
    AccountKind,
    AccountStatus,
    Direction,
    HoldStatus,
    TransactionStatus,
)
from models.money import AmountError, CurrencyError, check_minor_amount
from models.money import get_currency as _get_currency

# Error types (ApplicationError.type) the API maps to problem+json; all are non-retryable.
INSUFFICIENT_FUNDS: Final = "InsufficientFunds"
ACCOUNT_CLOSED: Final = "AccountClosed"
ACCOUNT_NOT_EMPTY: Final = "AccountNotEmpty"
CURRENCY_MISMATCH: Final = "CurrencyMismatch"
UNKNOWN_CURRENCY: Final = "UnknownCurrency"
INVALID_AMOUNT: Final = "InvalidAmount"
UNKNOWN_ACCOUNT: Final = "UnknownAccount"
UNKNOWN_USER: Final = "UnknownUser"
UNKNOWN_HOLD: Final = "UnknownHold"
UNKNOWN_TRANSACTION: Final = "UnknownTransaction"
IDEMPOTENCY_KEY_REUSED: Final = "IdempotencyKeyReused"
UNBALANCED_ENTRY: Final = "UnbalancedEntry"
HOLD_ALREADY_RESOLVED: Final = "HoldAlreadyResolved"
HOLD_EXPIRED: Final = "HoldExpired"
INVALID_SWEEP_TARGET: Final = "InvalidSweepTarget"
INVALID_CATEGORY: Final = "InvalidCategory"
INVALID_REQUEST: Final = "InvalidRequest"

LEDGER_ERROR_TYPES: Final[frozenset[str]] = frozenset(
    {
        INSUFFICIENT_FUNDS,
        ACCOUNT_CLOSED,
        ACCOUNT_NOT_EMPTY,
        CURRENCY_MISMATCH,
        UNKNOWN_CURRENCY,
        INVALID_AMOUNT,
        UNKNOWN_ACCOUNT,
        UNKNOWN_USER,
        UNKNOWN_HOLD,
        UNKNOWN_TRANSACTION,
        IDEMPOTENCY_KEY_REUSED,
        UNBALANCED_ENTRY,
        HOLD_ALREADY_RESOLVED,
        HOLD_EXPIRED,
        INVALID_SWEEP_TARGET,
        INVALID_CATEGORY,
        INVALID_REQUEST,
    }
)

# A balance may never leave +-2^62: far from BIGINT overflow even with a maximal posting on top.
MAX_BALANCE: Final = 2**62
MAX_LEGS: Final = 64
MAX_HOLD_TTL_SECONDS: Final = 90 * 24 * 3600
_KIND_RE = re.compile(r"^[a-z][a-z_]{0,31}$")
_EXTERNAL_KINDS = frozenset({"card", "cash"})


class LedgerError(ApplicationError):
    """A business rejection: non-retryable, with a stable `type` from the constants above.

    Being an ApplicationError, it crosses Temporal unchanged when raised in an activity; the API
    can catch it directly when it calls the plain functions. `info` holds JSON-safe details.
    """

    def __init__(self, type_: str, message: str, **info: Any) -> None:
        super().__init__(message, info, type=type_, non_retryable=True)
        self.info = info


# ---------------------------------------------------------------------------------------------
# validation helpers


def _currency(code: str) -> str:
    try:
        return _get_currency(code).code
    except CurrencyError as exc:
        raise LedgerError(UNKNOWN_CURRENCY, str(exc), currency=str(code)[:8]) from exc


def _amount(amount: int, *, positive: bool = True) -> int:
    try:
        return check_minor_amount(amount, positive=positive)
    except AmountError as exc:
        raise LedgerError(INVALID_AMOUNT, str(exc)) from exc


def _text(value: str | None, name: str, max_len: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise LedgerError(INVALID_REQUEST, f"{name} is required")
        return None
    value = value.strip()
    if required and not value:
        raise LedgerError(INVALID_REQUEST, f"{name} must not be empty")
    if len(value) > max_len:
        raise LedgerError(INVALID_REQUEST, f"{name} is longer than {max_len} characters")
    return value or None


def _key(value: str) -> str:
    key = _text(value, "idempotency_key", 200, required=True)
    assert key is not None
    return key


def _category(value: str | None) -> str | None:
    if value is not None and value not in CATEGORIES:
        raise LedgerError(
            INVALID_CATEGORY, f"unknown category {value[:40]!r}", allowed=sorted(CATEGORIES)
        )
    return value


def _fingerprint(operation: str, request: BaseModel, *, exclude: set[str] | None = None) -> str:
    """sha256 of the operation name and the request's canonical JSON (minus the key itself)."""
    body = request.model_dump(mode="json", exclude=exclude)
    canonical = json.dumps([operation, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reused(key: str) -> LedgerError:
    return LedgerError(
        IDEMPOTENCY_KEY_REUSED,
        "this idempotency key was already used for a different request",
        idempotency_key=key,
    )


ResultT = TypeVar("ResultT", bound=BaseModel)


async def _first_result(
    conn: AsyncConnection,
    find: TextClause,
    key: str,
    request_hash: str,
    build: Callable[[Any], ResultT],
) -> ResultT | None:
    """The first result stored under an idempotency key (None if the key is new); the same key
    with a different request is refused."""
    row = (await conn.execute(find, {"key": key})).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise _reused(key)
    return build(row)


def luhn_check_digit(digits: str) -> str:
    """The Luhn (mod 10) check digit to append to a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def is_valid_account_number(number: str) -> bool:
    """12 digits whose last one is the Luhn check digit of the first eleven."""
    return len(number) == 12 and number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def new_account_number() -> str:
    """A random 12-digit account number (no leading zero) ending in a Luhn check digit."""
    body = str(secrets.randbelow(9) + 1) + f"{secrets.randbelow(10**10):010d}"
    return body + luhn_check_digit(body)


# ---------------------------------------------------------------------------------------------
# SQL (module-level text() objects so the compiled form and the prepared statement are reused)

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


# ---------------------------------------------------------------------------------------------
# internals


@dataclass(slots=True)
class _Account:
    id: uuid.UUID
    kind: str
    owner_user_id: uuid.UUID | None
    name: str
    number: str | None
    currency: str
    status: str
    posted: int
    held: int


@dataclass(slots=True)
class _Leg:
    account_id: uuid.UUID
    amount: int
    currency: str
    held_delta: int = 0
    counterparty: str | None = None
    description: str | None = None
    merchant: str | None = None
    category: str | None = None
    external_id: str | None = None
    new_transaction: bool = True
    transaction_id: uuid.UUID | None = None


@dataclass(slots=True)
class _Event:
    type: str
    aggregate_id: uuid.UUID
    user_id: uuid.UUID | None
    payload: dict[str, Any]


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)


def _balance_event(acc: _Account, now: datetime) -> _Event:
    return _Event(
        "balance.updated",
        acc.id,
        acc.owner_user_id,
        {
            "account_id": str(acc.id),
            "user_id": str(acc.owner_user_id),
            "currency": acc.currency,
            "posted": acc.posted,
            "held": acc.held,
            "available": acc.posted - acc.held,
            "status": acc.status,
            "as_of": now.isoformat(),
        },
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _transaction_event(type_: str, row: Mapping[Any, Any]) -> _Event:
    payload = {k: _jsonable(v) for k, v in row.items() if k not in ("created_at", "updated_at")}
    return _Event(type_, row["account_id"], row["user_id"], payload)


def _event_params(events: Sequence[_Event]) -> dict[str, Any]:
    return {
        "topic": TRANSACTION_EVENTS_TOPIC,
        "o_type": [e.type for e in events],
        "o_agg": [e.aggregate_id for e in events],
        "o_user": [e.user_id for e in events],
        "o_payload": [_json(e.payload) for e in events],
    }


async def _write_events(conn: AsyncConnection, events: Sequence[_Event], now: datetime) -> None:
    if events:
        await conn.execute(_INSERT_EVENTS, {"now": now, **_event_params(events)})


async def _lock_accounts(
    conn: AsyncConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, _Account]:
    """Lock the accounts in ascending id order; UnknownAccount if any is missing."""
    wanted = sorted(set(ids))
    rows = (await conn.execute(_LOCK_ACCOUNTS, {"ids": wanted})).all()
    found = {row.id: _Account(*row) for row in rows}
    if len(found) != len(wanted):
        missing = next(i for i in wanted if i not in found)
        raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(missing))
    return found


def _check_owner(acc: _Account, owner_user_id: uuid.UUID | None) -> None:
    # Another user's account is reported exactly like a missing one (no existence leak).
    if owner_user_id is not None and acc.owner_user_id != owner_user_id:
        raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(acc.id))


def _check_open(acc: _Account, currency: str) -> None:
    if acc.status != AccountStatus.OPEN:
        raise LedgerError(ACCOUNT_CLOSED, "the account is closed", account_id=str(acc.id))
    if acc.currency != currency:
        raise LedgerError(
            CURRENCY_MISMATCH,
            f"the account holds {acc.currency}, not {currency}",
            account_id=str(acc.id),
            account_currency=acc.currency,
            currency=currency,
        )


def _insufficient(acc: _Account, requested: int) -> LedgerError:
    return LedgerError(
        INSUFFICIENT_FUNDS,
        "insufficient available funds",
        account_id=str(acc.id),
        available=acc.posted - acc.held,
        requested=requested,
        currency=acc.currency,
    )


def _default_counterparty(me: _Account, other: _Account) -> str | None:
    if other.kind != AccountKind.CUSTOMER or other.number is None:
        return None
    if other.owner_user_id == me.owner_user_id:
        return other.name
    return f"Account ****{other.number[-4:]}"  # another customer: never their name


async def _claim_entry(
    conn: AsyncConnection,
    *,
    entry_id: uuid.UUID,
    key: str,
    request_hash: str,
    kind: str,
    description: str,
    now: datetime,
) -> bool:
    """Insert the entry header; False if the key exists (after any concurrent holder commits)."""
    row = (
        await conn.execute(
            _CLAIM_ENTRY,
            {
                "id": entry_id,
                "key": key,
                "hash": request_hash,
                "kind": kind,
                "description": description,
                "now": now,
            },
        )
    ).first()
    return row is not None


async def _replay_entry(conn: AsyncConnection, key: str, request_hash: str) -> EntryResult:
    """The first result of an entry whose key was already used, or IdempotencyKeyReused."""
    entry = (await conn.execute(_FIND_ENTRY, {"key": key})).one()
    if entry.request_hash != request_hash:
        raise _reused(key)
    rows = (await conn.execute(_ENTRY_POSTINGS, {"entry_id": entry.id})).all()
    return EntryResult(
        entry_id=entry.id,
        idempotency_key=key,
        kind=entry.kind,
        description=entry.description,
        created_at=entry.created_at,
        postings=[
            PostingResult(
                account_id=r.account_id,
                amount=r.amount,
                currency=r.currency,
                balance_after=r.balance_after,
                transaction_id=r.transaction_id,
            )
            for r in rows
        ],
    )


async def _apply_entry(
    conn: AsyncConnection,
    *,
    entry_id: uuid.UUID,
    kind: str,
    description: str,
    legs: Sequence[_Leg],
    accounts: dict[uuid.UUID, _Account],
    now: datetime,
    occurred_at: datetime,
    extra_events: Sequence[_Event] = (),
) -> list[PostingResult]:
    """Validate the legs against the locked accounts and write everything in one statement."""
    acc_ids: list[uuid.UUID] = []
    acc_dp: list[int] = []
    acc_dh: list[int] = []
    p_acc: list[uuid.UUID] = []
    p_amt: list[int] = []
    p_cur: list[str] = []
    p_bal: list[int] = []
    t_cols: dict[str, list[Any]] = {
        c: []
        for c in (
            *("t_id", "t_acc", "t_user", "t_amount", "t_cur", "t_dir", "t_cp", "t_desc"),
            *("t_merchant", "t_cat", "t_ext"),
        )
    }
    events: list[_Event] = []
    touched: list[_Account] = []
    results: list[PostingResult] = []
    pair = len(legs) == 2
    for leg in legs:  # a closed or mismatched account is reported before any lack of funds
        _check_open(accounts[leg.account_id], leg.currency)
    for i, leg in enumerate(legs):
        acc = accounts[leg.account_id]
        new_posted = acc.posted + leg.amount
        new_held = acc.held + leg.held_delta
        if (
            acc.kind == AccountKind.CUSTOMER
            and leg.amount - leg.held_delta < 0
            and new_posted - new_held < 0
        ):
            raise _insufficient(acc, -(leg.amount - leg.held_delta))
        if abs(new_posted) > MAX_BALANCE:
            raise LedgerError(INVALID_AMOUNT, "the balance would overflow", account_id=str(acc.id))
        acc.posted, acc.held = new_posted, new_held
        acc_ids.append(acc.id)
        acc_dp.append(leg.amount)
        acc_dh.append(leg.held_delta)
        transaction_id = leg.transaction_id
        if leg.amount != 0:
            p_acc.append(acc.id)
            p_amt.append(leg.amount)
            p_cur.append(leg.currency)
            p_bal.append(new_posted)
        if acc.kind == AccountKind.CUSTOMER:
            if leg.new_transaction and leg.amount != 0:
                transaction_id = uuid.uuid4()
                direction = Direction.CREDIT if leg.amount > 0 else Direction.DEBIT
                counterparty = leg.counterparty
                if counterparty is None and pair:
                    counterparty = _default_counterparty(acc, accounts[legs[1 - i].account_id])
                desc = leg.description if leg.description is not None else description
                category = leg.category or categorize(
                    leg.merchant, desc, kind=kind, direction=direction
                )
                row = {
                    "id": transaction_id,
                    "account_id": acc.id,
                    "user_id": acc.owner_user_id,
                    "journal_entry_id": entry_id,
                    "hold_id": None,
                    "kind": kind,
                    "amount": abs(leg.amount),
                    "currency": leg.currency,
                    "direction": direction.value,
                    "status": TransactionStatus.POSTED.value,
                    "counterparty": counterparty,
                    "description": desc,
                    "merchant": leg.merchant,
                    "category": category,
                    "external_id": leg.external_id,
                    "occurred_at": occurred_at,
                }
                for col, value in zip(
                    t_cols,
                    (
                        *(transaction_id, acc.id, acc.owner_user_id, abs(leg.amount)),
                        *(leg.currency, direction.value, counterparty, desc, leg.merchant),
                        *(category, leg.external_id),
                    ),
                    strict=True,
                ):
                    t_cols[col].append(value)
                events.append(_transaction_event("transaction.created", row))
            touched.append(acc)
        results.append(
            PostingResult(
                account_id=acc.id,
                amount=leg.amount,
                currency=leg.currency,
                balance_after=new_posted,
                transaction_id=transaction_id,
            )
        )
    # Balance events carry the final balances (an account appears at most once per entry).
    all_events = [*events, *extra_events, *(_balance_event(a, now) for a in touched)]
    await conn.execute(
        _APPLY_ENTRY,
        {
            "now": now,
            "entry_id": entry_id,
            "kind": kind,
            "occurred_at": occurred_at,
            "acc_ids": acc_ids,
            "acc_dp": acc_dp,
            "acc_dh": acc_dh,
            "p_acc": p_acc,
            "p_amt": p_amt,
            "p_cur": p_cur,
            "p_bal": p_bal,
            **t_cols,
            **_event_params(all_events),
        },
    )
    return [r for r in results if r.amount != 0]


async def _post(
    conn: AsyncConnection,
    *,
    key: str,
    request_hash: str,
    kind: str,
    description: str,
    legs: Sequence[_Leg],
    occurred_at: datetime | None,
    owner_user_id: uuid.UUID | None = None,
    owner_checked: Iterable[uuid.UUID] = (),
    customer_only: Iterable[uuid.UUID] = (),
) -> tuple[EntryResult, bool]:
    """Claim the key, lock the accounts, apply the entry; or replay the first result.

    Returns the result and whether it is a replay.
    """
    now = utcnow()
    entry_id = uuid.uuid4()
    wanted = sorted({leg.account_id for leg in legs})
    rows = (
        await conn.execute(
            _CLAIM_AND_LOCK,
            {
                "id": entry_id,
                "key": key,
                "hash": request_hash,
                "kind": kind,
                "description": description,
                "now": now,
                "ids": wanted,
            },
        )
    ).all()
    if not rows:
        first = (await conn.execute(_FIND_ENTRY, {"key": key})).one()
        if first.id != entry_id:  # the key was used before: replay its first result
            return await _replay_entry(conn, key, request_hash), True
    accounts = {row.id: _Account(*row) for row in rows}
    if len(accounts) != len(wanted):
        missing = next(i for i in wanted if i not in accounts)
        raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(missing))
    for account_id in owner_checked:
        _check_owner(accounts[account_id], owner_user_id)
    for account_id in customer_only:
        if accounts[account_id].kind != AccountKind.CUSTOMER:
            raise LedgerError(
                INVALID_REQUEST,
                "this operation needs a customer account",
                account_id=str(account_id),
            )
    postings = await _apply_entry(
        conn,
        entry_id=entry_id,
        kind=kind,
        description=description,
        legs=legs,
        accounts=accounts,
        now=now,
        occurred_at=occurred_at or now,
    )
    result = EntryResult(
        entry_id=entry_id,
        idempotency_key=key,
        kind=kind,
        description=description,
        created_at=now,
        postings=postings,
    )
    return result, False


async def _system_account_id(conn: AsyncConnection, kind: AccountKind, currency: str) -> uuid.UUID:
    row = (
        await conn.execute(
            text("SELECT id FROM ledger_accounts WHERE kind = :kind AND currency = :currency"),
            {"kind": kind.value, "currency": currency},
        )
    ).first()
    if row is not None:
        account_id: uuid.UUID = row.id
        return account_id
    accounts = await _ensure_system_accounts(conn, currency)
    found: uuid.UUID = getattr(accounts, kind.value)
    return found


async def _ensure_system_accounts(conn: AsyncConnection, currency: str) -> SystemAccounts:
    select_sql = text(
        "SELECT kind, id FROM ledger_accounts WHERE kind <> 'customer' AND currency = :currency"
    )
    ids: dict[str, uuid.UUID] = dict(
        (await conn.execute(select_sql, {"currency": currency})).tuples().all()
    )
    if len(ids) < len(SYSTEM_KINDS):
        names = {
            AccountKind.EXTERNAL_SETTLEMENT: "External settlement",
            AccountKind.FEES: "Fees",
            AccountKind.SUSPENSE: "Suspense",
        }
        await conn.execute(
            text(
                "INSERT INTO ledger_accounts (id, kind, name, currency, status, posted, held) "
                "VALUES (:id, :kind, :name, :currency, 'open', 0, 0) "
                "ON CONFLICT (kind, currency) WHERE kind <> 'customer' DO NOTHING"
            ),
            [
                {
                    "id": uuid.uuid4(),
                    "kind": kind.value,
                    "name": f"{names[kind]} {currency}",
                    "currency": currency,
                }
                for kind in SYSTEM_KINDS
                if kind.value not in ids
            ],
        )
        ids = dict((await conn.execute(select_sql, {"currency": currency})).tuples().all())
    return SystemAccounts(
        currency=currency,
        external_settlement=ids[AccountKind.EXTERNAL_SETTLEMENT.value],
        fees=ids[AccountKind.FEES.value],
        suspense=ids[AccountKind.SUSPENSE.value],
    )


# ---------------------------------------------------------------------------------------------
# public operations


async def ensure_system_accounts(
    session: AsyncSession, req: EnsureSystemAccountsInput
) -> SystemAccounts:
    """Create the currency's external settlement, fees and suspense accounts if missing."""
    currency = _currency(req.currency)
    return await _ensure_system_accounts(await session.connection(), currency)


async def open_account(session: AsyncSession, req: OpenAccountInput) -> OpenedAccount:
    """Open a customer account with a fresh 12-digit account number (idempotent on the key)."""
    key = _key(req.idempotency_key)
    currency = _currency(req.currency)
    name = _text(req.name, "name", 100, required=True)
    request_hash = _fingerprint("open_account", req, exclude={"idempotency_key"})
    conn = await session.connection()
    find = text(
        "SELECT id, number, owner_user_id, currency, type, opened_at, request_hash "
        "FROM ledger_accounts WHERE idempotency_key = :key"
    )

    async def replay() -> OpenedAccount | None:
        return await _first_result(
            conn,
            find,
            key,
            request_hash,
            lambda row: OpenedAccount(
                account_id=row.id,
                number=row.number,
                owner_user_id=row.owner_user_id,
                currency=row.currency,
                type=row.type,
                opened_at=row.opened_at,
            ),
        )

    if (first := await replay()) is not None:
        return first
    owner = (
        await conn.execute(text("SELECT 1 FROM users WHERE id = :id"), {"id": req.owner_user_id})
    ).first()
    if owner is None:
        raise LedgerError(UNKNOWN_USER, "unknown user", user_id=str(req.owner_user_id))
    await _ensure_system_accounts(conn, currency)
    insert = text(
        "INSERT INTO ledger_accounts (id, kind, type, owner_user_id, name, number, currency, "
        "status, posted, held, idempotency_key, request_hash, opened_at, updated_at) "
        "VALUES (:id, 'customer', :type, :owner, :name, :number, :currency, 'open', 0, 0, "
        ":key, :hash, :now, :now) ON CONFLICT DO NOTHING RETURNING id"
    )
    now = utcnow()
    for _ in range(8):
        account_id, number = uuid.uuid4(), new_account_number()
        inserted = (
            await conn.execute(
                insert,
                {
                    "id": account_id,
                    "type": req.type.value,
                    "owner": req.owner_user_id,
                    "name": name,
                    "number": number,
                    "currency": currency,
                    "key": key,
                    "hash": request_hash,
                    "now": now,
                },
            )
        ).first()
        if inserted is not None:
            opened = OpenedAccount(
                account_id=account_id,
                number=number,
                owner_user_id=req.owner_user_id,
                currency=currency,
                type=req.type,
                opened_at=now,
            )
            event = _Event(
                "account.opened",
                account_id,
                req.owner_user_id,
                {**opened.model_dump(mode="json"), "name": name},
            )
            await _write_events(conn, [event], now)
            return opened
        # Either a concurrent request with the same key won, or the number was taken.
        if (first := await replay()) is not None:
            return first
    raise RuntimeError("could not allocate a unique account number")  # pragma: no cover


def _entry_legs(req: PostEntryInput) -> list[_Leg]:
    if not 2 <= len(req.legs) <= MAX_LEGS:
        raise LedgerError(INVALID_REQUEST, f"an entry needs 2 to {MAX_LEGS} legs")
    if len({leg.account_id for leg in req.legs}) != len(req.legs):
        raise LedgerError(INVALID_REQUEST, "an account may appear only once per entry")
    sums: dict[str, int] = {}
    legs = []
    for leg in req.legs:
        currency = _currency(leg.currency)
        amount = _amount(leg.amount, positive=False)
        sums[currency] = sums.get(currency, 0) + amount
        legs.append(
            _Leg(
                account_id=leg.account_id,
                amount=amount,
                currency=currency,
                counterparty=_text(leg.counterparty, "counterparty", 200),
                description=_text(leg.description, "description", 500),
                merchant=_text(leg.merchant, "merchant", 200),
                category=_category(leg.category),
            )
        )
    unbalanced = {c: s for c, s in sums.items() if s != 0}
    if unbalanced:
        raise LedgerError(
            UNBALANCED_ENTRY, "postings must sum to zero per currency", sums=unbalanced
        )
    return legs


def _kind(kind: str) -> str:
    if not _KIND_RE.match(kind):
        raise LedgerError(INVALID_REQUEST, "kind must be lower-case letters and underscores")
    return kind


async def post_entry(session: AsyncSession, req: PostEntryInput) -> EntryResult:
    """Post a balanced multi-leg journal entry (idempotent on the key)."""
    key = _key(req.idempotency_key)
    kind = _kind(req.kind)
    description = _text(req.description, "description", 500) or ""
    legs = _entry_legs(req)
    result, _ = await _post(
        await session.connection(),
        key=key,
        request_hash=_fingerprint("post_entry", req, exclude={"idempotency_key"}),
        kind=kind,
        description=description,
        legs=legs,
        occurred_at=req.occurred_at,
        owner_user_id=req.owner_user_id,
        owner_checked=[leg.account_id for leg in legs if leg.amount < 0],
    )
    return result


async def transfer(session: AsyncSession, req: LedgerTransferInput) -> EntryResult:
    """Move money between two accounts of one currency: the common two-leg entry."""
    key = _key(req.idempotency_key)
    currency = _currency(req.currency)
    amount = _amount(req.amount)
    if req.from_account_id == req.to_account_id:
        raise LedgerError(INVALID_REQUEST, "cannot transfer to the same account")
    description = _text(req.description, "description", 500) or ""
    result, _ = await _post(
        await session.connection(),
        key=key,
        request_hash=_fingerprint("transfer", req, exclude={"idempotency_key"}),
        kind="transfer",
        description=description,
        legs=[
            _Leg(req.from_account_id, -amount, currency, category="transfer"),
            _Leg(req.to_account_id, amount, currency, category="transfer"),
        ],
        occurred_at=req.occurred_at,
        owner_user_id=req.owner_user_id,
        owner_checked=[req.from_account_id],
        # A customer's own transfer moves money between customer accounts only.
        customer_only=[req.from_account_id, req.to_account_id] if req.owner_user_id else (),
    )
    return result


async def fund_account(session: AsyncSession, req: FundAccountInput) -> EntryResult:
    """Ops funding: credit a customer account from external settlement, audited."""
    key = _key(req.idempotency_key)
    currency = _currency(req.currency)
    amount = _amount(req.amount)
    description = _text(req.description, "description", 500) or ""
    reason = _text(req.reason, "reason", 500) or ""
    conn = await session.connection()
    settlement = await _system_account_id(conn, AccountKind.EXTERNAL_SETTLEMENT, currency)
    result, replayed = await _post(
        conn,
        key=key,
        request_hash=_fingerprint("fund_account", req, exclude={"idempotency_key"}),
        kind="funding",
        description=description,
        legs=[
            _Leg(settlement, -amount, currency),
            _Leg(req.account_id, amount, currency, category="income"),
        ],
        occurred_at=None,
        customer_only=[req.account_id],
    )
    if not replayed:  # audit the funding once, not each retry
        await record_audit(
            session,
            "ledger.funding",
            actor_user_id=req.actor_user_id,
            subject=f"ledger_account:{req.account_id}",
            client=req.client,
            details={
                "entry_id": str(result.entry_id),
                "amount": amount,
                "currency": currency,
                "reason": reason,
            },
        )
    return result


async def record_external_transaction(
    session: AsyncSession, req: ExternalEntryInput
) -> ExternalTransactionResult:
    """Record a card or cash transaction on a customer account, idempotent on its external id."""
    external_id = _text(req.external_id, "external_id", 100, required=True)
    currency = _currency(req.currency)
    amount = _amount(req.amount)
    if req.kind not in _EXTERNAL_KINDS:
        raise LedgerError(INVALID_REQUEST, "kind must be 'card' or 'cash'")
    description = _text(req.description, "description", 500) or ""
    merchant = _text(req.merchant, "merchant", 200)
    counterparty = _text(req.counterparty, "counterparty", 200)
    category = _category(req.category)
    conn = await session.connection()
    settlement = await _system_account_id(conn, AccountKind.EXTERNAL_SETTLEMENT, currency)
    sign = -1 if req.direction == Direction.DEBIT else 1
    customer_leg = _Leg(
        req.account_id,
        sign * amount,
        currency,
        counterparty=counterparty or merchant,
        merchant=merchant,
        category=category,
        external_id=external_id,
    )
    result, _ = await _post(
        conn,
        key=f"external:{req.account_id}:{external_id}",
        request_hash=_fingerprint("record_external_transaction", req),
        kind=req.kind,
        description=description,
        legs=[customer_leg, _Leg(settlement, -sign * amount, currency)],
        occurred_at=req.occurred_at,
        owner_user_id=req.owner_user_id,
        owner_checked=[req.account_id],
        customer_only=[req.account_id],
    )
    posting = next(p for p in result.postings if p.account_id == req.account_id)
    assert posting.transaction_id is not None
    return ExternalTransactionResult(
        transaction_id=posting.transaction_id,
        entry_id=result.entry_id,
        account_id=req.account_id,
        amount=amount,
        currency=currency,
        direction=req.direction,
        balance_after=posting.balance_after,
        created_at=result.created_at,
    )


# --- holds ------------------------------------------------------------------------------------


def _resolved(row: Any) -> ResolvedHold:
    return ResolvedHold(
        hold_id=row.id,
        account_id=row.account_id,
        status=HoldStatus(row.status),
        amount=row.amount,
        currency=row.currency,
        captured_amount=row.captured_amount,
        capture_entry_id=row.capture_entry_id,
        resolved_at=row.resolved_at,
    )


async def place_hold(session: AsyncSession, req: PlaceHoldInput) -> PlacedHold:
    """Reserve funds on a customer account (pending transaction, held += amount)."""
    key = _key(req.idempotency_key)
    currency = _currency(req.currency)
    amount = _amount(req.amount)
    kind = _kind(req.kind)
    description = _text(req.description, "description", 500) or ""
    merchant = _text(req.merchant, "merchant", 200)
    request_hash = _fingerprint("place_hold", req, exclude={"idempotency_key"})
    conn = await session.connection()
    find = text(
        "SELECT h.id, h.account_id, h.counterparty_account_id, h.amount, h.currency, "
        "h.expires_at, h.created_at, h.request_hash, t.id AS transaction_id FROM holds h "
        "LEFT JOIN transactions t ON t.hold_id = h.id WHERE h.idempotency_key = :key"
    )

    async def replay() -> PlacedHold | None:
        return await _first_result(
            conn,
            find,
            key,
            request_hash,
            lambda row: PlacedHold(
                hold_id=row.id,
                account_id=row.account_id,
                counterparty_account_id=row.counterparty_account_id,
                amount=row.amount,
                currency=row.currency,
                expires_at=row.expires_at,
                transaction_id=row.transaction_id,
                created_at=row.created_at,
            ),
        )

    if (first := await replay()) is not None:
        return first
    # Expiry is checked after the replay so a late retry still gets its first result.
    now = utcnow()
    if req.expires_at is not None:
        if req.expires_at.tzinfo is None:
            raise LedgerError(INVALID_REQUEST, "expires_at must be timezone-aware")
        expires_at = req.expires_at
    elif 0 < req.ttl_seconds <= MAX_HOLD_TTL_SECONDS:
        expires_at = now + timedelta(seconds=req.ttl_seconds)
    else:
        raise LedgerError(INVALID_REQUEST, f"ttl_seconds must be 1..{MAX_HOLD_TTL_SECONDS}")
    if expires_at <= now or expires_at > now + timedelta(seconds=MAX_HOLD_TTL_SECONDS):
        raise LedgerError(INVALID_REQUEST, "expires_at must be in the future, within 90 days")
    counterparty_id = req.counterparty_account_id or await _system_account_id(
        conn, AccountKind.EXTERNAL_SETTLEMENT, currency
    )
    if counterparty_id == req.account_id:
        raise LedgerError(INVALID_REQUEST, "a hold cannot pay the account itself")
    other = (
        await conn.execute(
            text("SELECT id, status, currency FROM ledger_accounts WHERE id = :id"),
            {"id": counterparty_id},
        )
    ).first()
    if other is None:
        raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(counterparty_id))
    acc = (await _lock_accounts(conn, [req.account_id]))[req.account_id]
    _check_owner(acc, req.owner_user_id)
    if acc.kind != AccountKind.CUSTOMER:
        raise LedgerError(INVALID_REQUEST, "holds are placed on customer accounts")
    _check_open(acc, currency)
    if other.status != AccountStatus.OPEN:
        raise LedgerError(ACCOUNT_CLOSED, "the account is closed", account_id=str(other.id))
    if other.currency != currency:
        raise LedgerError(CURRENCY_MISMATCH, "the counterparty account has another currency")
    if acc.posted - acc.held < amount:
        raise _insufficient(acc, amount)
    hold_id = uuid.uuid4()
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO holds (id, account_id, counterparty_account_id, amount, currency, "
                "status, description, merchant, idempotency_key, request_hash, expires_at, "
                "created_at) VALUES (:id, :account_id, :cp, :amount, :currency, 'pending', "
                ":description, :merchant, :key, :hash, :expires_at, :now) "
                "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
            ),
            {
                "id": hold_id,
                "account_id": acc.id,
                "cp": counterparty_id,
                "amount": amount,
                "currency": currency,
                "description": description,
                "merchant": merchant,
                "key": key,
                "hash": request_hash,
                "expires_at": expires_at,
                "now": now,
            },
        )
    ).first()
    if inserted is None:  # a concurrent request with this key committed first
        first = await replay()
        assert first is not None
        return first
    acc.held += amount
    await conn.execute(_UPDATE_HELD, {"ids": [acc.id], "dh": [amount], "now": now})
    transaction_id = uuid.uuid4()
    row = {
        "id": transaction_id,
        "account_id": acc.id,
        "user_id": acc.owner_user_id,
        "journal_entry_id": None,
        "hold_id": hold_id,
        "kind": kind,
        "amount": amount,
        "currency": currency,
        "direction": Direction.DEBIT.value,
        "status": TransactionStatus.PENDING.value,
        "counterparty": merchant,
        "description": description,
        "merchant": merchant,
        "category": categorize(merchant, description, direction="debit"),
        "external_id": None,
        "occurred_at": now,
    }
    await conn.execute(
        text(
            "INSERT INTO transactions (id, account_id, user_id, journal_entry_id, hold_id, kind, "
            "amount, currency, direction, status, counterparty, description, merchant, category, "
            "external_id, occurred_at, created_at, updated_at) VALUES (:id, :account_id, "
            ":user_id, :journal_entry_id, :hold_id, :kind, :amount, :currency, :direction, "
            ":status, :counterparty, :description, :merchant, :category, :external_id, "
            ":occurred_at, :occurred_at, :occurred_at)"
        ),
        row,
    )
    await _write_events(
        conn, [_transaction_event("transaction.created", row), _balance_event(acc, now)], now
    )
    return PlacedHold(
        hold_id=hold_id,
        account_id=acc.id,
        counterparty_account_id=counterparty_id,
        amount=amount,
        currency=currency,
        expires_at=expires_at,
        transaction_id=transaction_id,
        created_at=now,
    )


async def _lock_hold(
    conn: AsyncConnection, hold_id: uuid.UUID, owner_user_id: uuid.UUID | None
) -> Any:
    hold = (await conn.execute(_SELECT_HOLD, {"id": hold_id})).first()
    if hold is None or (owner_user_id is not None and hold.owner_user_id != owner_user_id):
        raise LedgerError(UNKNOWN_HOLD, "unknown hold", hold_id=str(hold_id))
    return hold


def _already_resolved(hold: Any) -> LedgerError:
    return LedgerError(
        HOLD_ALREADY_RESOLVED,
        f"the hold is already {hold.status}",
        hold_id=str(hold.id),
        status=hold.status,
    )


async def _update_hold_transactions(
    conn: AsyncConnection,
    hold_ids: Sequence[uuid.UUID],
    status: TransactionStatus,
    now: datetime,
    *,
    amount: int | None = None,
    entry_id: uuid.UUID | None = None,
) -> list[_Event]:
    result = await conn.execute(
        _UPDATE_HOLD_TRANSACTIONS,
        {
            "status": status.value,
            "now": now,
            "amount": amount,
            "entry_id": entry_id,
            "ids": list(hold_ids),
        },
    )
    rows = result.mappings().all()
    return [_transaction_event("transaction.updated", row) for row in rows]


async def capture_hold(session: AsyncSession, req: CaptureHoldInput) -> ResolvedHold:
    """Capture a pending hold fully or partly: post the captured amount, release the rest.

    A retry with the same amount returns the first result; another amount is
    IdempotencyKeyReused; a hold released or expired is HoldAlreadyResolved.
    """
    conn = await session.connection()
    hold = await _lock_hold(conn, req.hold_id, req.owner_user_id)
    amount = hold.amount if req.amount is None else _amount(req.amount)
    if hold.status == HoldStatus.CAPTURED:
        if hold.captured_amount == amount:
            return _resolved(hold)
        raise _reused(f"hold:{hold.id}:capture")
    if hold.status != HoldStatus.PENDING:
        raise _already_resolved(hold)
    if amount > hold.amount:
        raise LedgerError(
            INVALID_AMOUNT, "cannot capture more than the hold", hold_amount=hold.amount
        )
    now = utcnow()
    if hold.expires_at <= now:
        raise LedgerError(HOLD_EXPIRED, "the hold has expired", hold_id=str(hold.id))
    key = f"hold:{hold.id}:capture"
    entry_id = uuid.uuid4()
    description = hold.description or "Hold capture"
    if not await _claim_entry(
        conn,
        entry_id=entry_id,
        key=key,
        request_hash=hashlib.sha256(f"{hold.id}:{amount}".encode()).hexdigest(),
        kind="hold_capture",
        description=description,
        now=now,
    ):
        raise _already_resolved(hold)  # pragma: no cover - a pending hold has no capture entry
    accounts = await _lock_accounts(conn, [hold.account_id, hold.counterparty_account_id])
    updated = await _update_hold_transactions(
        conn, [hold.id], TransactionStatus.POSTED, now, amount=amount, entry_id=entry_id
    )
    pending_id = updated[0].payload["id"] if updated else None
    await _apply_entry(
        conn,
        entry_id=entry_id,
        kind="hold_capture",
        description=description,
        legs=[
            _Leg(
                hold.account_id,
                -amount,
                hold.currency,
                held_delta=-hold.amount,
                new_transaction=False,
                transaction_id=uuid.UUID(pending_id) if pending_id else None,
            ),
            _Leg(hold.counterparty_account_id, amount, hold.currency),
        ],
        accounts=accounts,
        now=now,
        occurred_at=now,
        extra_events=updated,
    )
    row = (
        await conn.execute(
            text(
                "UPDATE holds SET status = 'captured', captured_amount = :amount, "
                "capture_entry_id = :entry_id, resolved_at = :now WHERE id = :id "
                "RETURNING id, account_id, status, amount, currency, captured_amount, "
                "capture_entry_id, resolved_at"
            ),
            {"amount": amount, "entry_id": entry_id, "now": now, "id": hold.id},
        )
    ).one()
    return _resolved(row)


async def _drop_holds(
    conn: AsyncConnection, holds: Sequence[Any], status: HoldStatus, now: datetime
) -> None:
    """Release or expire locked pending holds: held -= amount, rows and events updated."""
    accounts = await _lock_accounts(conn, {h.account_id for h in holds})
    deltas: dict[uuid.UUID, int] = {}
    for h in holds:
        deltas[h.account_id] = deltas.get(h.account_id, 0) - h.amount
        accounts[h.account_id].held -= h.amount
    await conn.execute(_UPDATE_HELD, {"ids": list(deltas), "dh": list(deltas.values()), "now": now})
    await conn.execute(
        text(
            "UPDATE holds SET status = :status, resolved_at = :now "
            "WHERE id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"status": status.value, "now": now, "ids": [h.id for h in holds]},
    )
    events = await _update_hold_transactions(
        conn, [h.id for h in holds], TransactionStatus(status.value), now
    )
    events += [_balance_event(accounts[a], now) for a in deltas]
    await _write_events(conn, events, now)


async def release_hold(session: AsyncSession, req: ReleaseHoldInput) -> ResolvedHold:
    """Release a pending hold (held -= amount, the pending transaction becomes released)."""
    conn = await session.connection()
    hold = await _lock_hold(conn, req.hold_id, req.owner_user_id)
    if hold.status == HoldStatus.RELEASED:
        return _resolved(hold)
    if hold.status != HoldStatus.PENDING:
        raise _already_resolved(hold)
    now = utcnow()
    await _drop_holds(conn, [hold], HoldStatus.RELEASED, now)
    return ResolvedHold(
        hold_id=hold.id,
        account_id=hold.account_id,
        status=HoldStatus.RELEASED,
        amount=hold.amount,
        currency=hold.currency,
        captured_amount=None,
        capture_entry_id=None,
        resolved_at=now,
    )


async def expire_holds(session: AsyncSession, req: ExpireHoldsInput) -> ExpireHoldsResult:
    """Expire up to `limit` pending holds past their expiry (skipping ones locked right now)."""
    if req.now is not None and req.now.tzinfo is None:
        raise LedgerError(INVALID_REQUEST, "now must be timezone-aware")
    conn = await session.connection()
    now = req.now or utcnow()
    holds = (
        await conn.execute(
            text(
                "SELECT id, account_id, amount FROM holds WHERE status = 'pending' "
                "AND expires_at <= :now ORDER BY id LIMIT :limit FOR NO KEY UPDATE SKIP LOCKED"
            ),
            {"now": now, "limit": req.limit},
        )
    ).all()
    if holds:
        await _drop_holds(conn, holds, HoldStatus.EXPIRED, utcnow())
    return ExpireHoldsResult(expired=[h.id for h in holds])


# --- accounts and transactions ---------------------------------------------------------------


async def close_account(session: AsyncSession, req: CloseAccountInput) -> ClosedAccount:
    """Close a customer account; a non-zero balance is first swept to `sweep_to_account_id`.

    Closing an already closed account returns how it was closed (a different sweep target than
    the one that received the balance is IdempotencyKeyReused).
    """
    conn = await session.connection()
    ids = [req.account_id] + ([req.sweep_to_account_id] if req.sweep_to_account_id else [])
    accounts = await _lock_accounts(conn, ids)
    acc = accounts[req.account_id]
    _check_owner(acc, req.owner_user_id)
    if acc.kind != AccountKind.CUSTOMER:
        raise LedgerError(INVALID_REQUEST, "only customer accounts can be closed")
    sweep_key = f"account:{acc.id}:close-sweep"
    if acc.status == AccountStatus.CLOSED:
        closed_at = (
            await conn.execute(
                text("SELECT closed_at FROM ledger_accounts WHERE id = :id"), {"id": acc.id}
            )
        ).scalar_one()
        entry = (await conn.execute(_FIND_ENTRY, {"key": sweep_key})).first()
        if entry is None:
            return ClosedAccount(
                account_id=acc.id,
                closed_at=closed_at,
                swept_amount=0,
                sweep_to_account_id=None,
                sweep_entry_id=None,
            )
        legs = (await conn.execute(_ENTRY_POSTINGS, {"entry_id": entry.id})).all()
        credit = next(p for p in legs if p.amount > 0)
        if req.sweep_to_account_id != credit.account_id:
            raise _reused(sweep_key)
        return ClosedAccount(
            account_id=acc.id,
            closed_at=closed_at,
            swept_amount=credit.amount,
            sweep_to_account_id=credit.account_id,
            sweep_entry_id=entry.id,
        )
    if acc.held:
        raise LedgerError(
            ACCOUNT_NOT_EMPTY, "the account has pending holds", held=acc.held, posted=acc.posted
        )
    now = utcnow()
    swept, sweep_entry_id, target_id = 0, None, None
    if acc.posted:
        if req.sweep_to_account_id is None:
            raise LedgerError(
                ACCOUNT_NOT_EMPTY,
                "the account has a balance; give an account to sweep it to",
                posted=acc.posted,
            )
        target = accounts[req.sweep_to_account_id]
        if target.owner_user_id != acc.owner_user_id:  # someone else's: as if it did not exist
            raise LedgerError(UNKNOWN_ACCOUNT, "unknown account", account_id=str(target.id))
        if target.id == acc.id or target.kind != AccountKind.CUSTOMER:
            raise LedgerError(INVALID_SWEEP_TARGET, "the sweep target must be another account")
        if target.status != AccountStatus.OPEN:
            raise LedgerError(ACCOUNT_CLOSED, "the sweep target is closed")
        if target.currency != acc.currency:
            raise LedgerError(CURRENCY_MISMATCH, "the sweep target has another currency")
        swept, sweep_entry_id, target_id = acc.posted, uuid.uuid4(), target.id
        description = f"Balance moved from closed account {acc.name}"
        await _claim_entry(
            conn,
            entry_id=sweep_entry_id,
            key=sweep_key,
            request_hash=hashlib.sha256(f"{acc.id}:{target.id}".encode()).hexdigest(),
            kind="sweep",
            description=description,
            now=now,
        )
        await _apply_entry(
            conn,
            entry_id=sweep_entry_id,
            kind="sweep",
            description=description,
            legs=[
                _Leg(acc.id, -swept, acc.currency, category="transfer"),
                _Leg(target.id, swept, acc.currency, category="transfer"),
            ],
            accounts=accounts,
            now=now,
            occurred_at=now,
        )
    await conn.execute(
        text(
            "UPDATE ledger_accounts SET status = 'closed', closed_at = :now, updated_at = :now "
            "WHERE id = :id"
        ),
        {"now": now, "id": acc.id},
    )
    acc.status = AccountStatus.CLOSED
    result = ClosedAccount(
        account_id=acc.id,
        closed_at=now,
        swept_amount=swept,
        sweep_to_account_id=target_id,
        sweep_entry_id=sweep_entry_id,
    )
    await _write_events(
        conn,
        [
            _Event("account.closed", acc.id, acc.owner_user_id, result.model_dump(mode="json")),
            _balance_event(acc, now),
        ],
        now,
    )
    return result


async def recategorize_transaction(
    session: AsyncSession, req: RecategorizeInput
) -> TransactionRecord:
    """Set the category of a transaction (naturally idempotent; emits transaction.updated)."""
    category = _category(req.category)
    conn = await session.connection()
    now = utcnow()
    params = {
        "category": category,
        "now": now,
        "id": req.transaction_id,
        "owner": req.owner_user_id,
    }
    rows = (await conn.execute(_RECATEGORIZE, params)).mappings().all()
    if not rows:
        raise LedgerError(
            UNKNOWN_TRANSACTION, "unknown transaction", transaction_id=str(req.transaction_id)
        )
    view = TransactionRecord.model_validate(dict(rows[0]))
    if view.updated_at == now:
        await _write_events(conn, [_transaction_event("transaction.updated", rows[0])], now)
    return view


# ---------------------------------------------------------------------------------------------
# Temporal activities

Req = TypeVar("Req", bound=BaseModel)
Res = TypeVar("Res", bound=BaseModel)


class LedgerActivities:
    """The ledger operations as activities: each runs in its own database transaction."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def _run(self, operation: Callable[[AsyncSession, Req], Awaitable[Res]], req: Req) -> Res:
        async with transaction(self._sessions) as session:
            return await operation(session, req)

    @activity.defn(name="ledger.open_account")
    async def open_account(self, req: OpenAccountInput) -> OpenedAccount:
        """Open a customer account."""
        return await self._run(open_account, req)

    @activity.defn(name="ledger.ensure_system_accounts")
    async def ensure_system_accounts(self, req: EnsureSystemAccountsInput) -> SystemAccounts:
        """Create a currency's system accounts if missing."""
        return await self._run(ensure_system_accounts, req)

    @activity.defn(name="ledger.post_entry")
    async def post_entry(self, req: PostEntryInput) -> EntryResult:
        """Post a balanced multi-leg entry."""
        return await self._run(post_entry, req)

    @activity.defn(name="ledger.transfer")
    async def transfer(self, req: LedgerTransferInput) -> EntryResult:
        """Transfer between two accounts."""
        return await self._run(transfer, req)

    @activity.defn(name="ledger.fund_account")
    async def fund_account(self, req: FundAccountInput) -> EntryResult:
        """Credit a customer account from external settlement (audited)."""
        return await self._run(fund_account, req)

    @activity.defn(name="ledger.record_external_transaction")
    async def record_external_transaction(
        self, req: ExternalEntryInput
    ) -> ExternalTransactionResult:
        """Record a card or cash transaction."""
        return await self._run(record_external_transaction, req)

    @activity.defn(name="ledger.place_hold")
    async def place_hold(self, req: PlaceHoldInput) -> PlacedHold:
        """Place a hold."""
        return await self._run(place_hold, req)

    @activity.defn(name="ledger.capture_hold")
    async def capture_hold(self, req: CaptureHoldInput) -> ResolvedHold:
        """Capture a hold fully or partly."""
        return await self._run(capture_hold, req)

    @activity.defn(name="ledger.release_hold")
    async def release_hold(self, req: ReleaseHoldInput) -> ResolvedHold:
        """Release a hold."""
        return await self._run(release_hold, req)

    @activity.defn(name="ledger.expire_holds")
    async def expire_holds(self, req: ExpireHoldsInput) -> ExpireHoldsResult:
        """Expire holds past their expiry."""
        return await self._run(expire_holds, req)

    @activity.defn(name="ledger.close_account")
    async def close_account(self, req: CloseAccountInput) -> ClosedAccount:
        """Close a customer account (sweeping its balance if asked)."""
        return await self._run(close_account, req)

    @activity.defn(name="ledger.recategorize_transaction")
    async def recategorize_transaction(self, req: RecategorizeInput) -> TransactionRecord:
        """Set a transaction's category."""
        return await self._run(recategorize_transaction, req)

    def all(self) -> list[Callable[..., Any]]:
        """Every ledger activity, for worker registration."""
        return [
            self.open_account,
            self.ensure_system_accounts,
            self.post_entry,
            self.transfer,
            self.fund_account,
            self.record_external_transaction,
            self.place_hold,
            self.capture_hold,
            self.release_hold,
            self.expire_holds,
            self.close_account,
            self.recategorize_transaction,
        ]


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
    "UNBALANCED_ENTRY",
    "UNKNOWN_ACCOUNT",
    "UNKNOWN_CURRENCY",
    "UNKNOWN_HOLD",
    "UNKNOWN_TRANSACTION",
    "UNKNOWN_USER",
    "EntryLeg",
    "LedgerActivities",
    "LedgerError",
    "capture_hold",
    "close_account",
    "ensure_system_accounts",
    "expire_holds",
    "fund_account",
    "is_valid_account_number",
    "new_account_number",
    "open_account",
    "place_hold",
    "post_entry",
    "recategorize_transaction",
    "record_external_transaction",
    "release_hold",
    "transfer",
]
