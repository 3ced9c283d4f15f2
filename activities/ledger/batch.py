"""The batch posting path: many journal entries in one transaction, set-based.

Same rules as `post_entry` (balanced legs per currency, known currencies and amounts, open
accounts in the leg's currency, no customer overdraft, owner checks, idempotency per entry key
with the same request fingerprint, the same outbox events per entry), but the database work is
a handful of statements for the whole batch instead of a few per entry:

1. validate every entry on its own (no I/O);
2. claim all new keys in one multi-row INSERT, in key order (concurrent batches and single
   postings wait on each other's keys in one order, as the single path claims first);
3. read the first results of keys used before in two statements;
4. lock every account of the claimed entries in ascending id order (one statement);
5. apply the entries one after another in memory against the locked balances, so each sees the
   balance its predecessors left; a rejected entry's balance changes are undone in memory and
   the pass undone to a savepoint and repeated without it (the ledger is append-only: a
   claimed header cannot be deleted, and an entry without postings would fail verify);
6. write balances (one UPDATE with the summed deltas per account), postings, transaction rows
   and outbox events in one statement.

Mixed batches: each entry gets its own result (posted, replayed or rejected with its error
type), because a migration quarantines a bad legacy row rather than stopping on it; `atomic=True`
raises the first rejection instead, for callers that need all or nothing. Either way the caller's
transaction holds the whole batch: commit once, or roll back on an exception.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from activities.ledger.engine import (
    _T_COLS,
    _Account,
    _check_owner,
    _Leg,
    _Plan,
    _plan_entry,
)
from activities.ledger.entries import _entry_legs, _kind
from activities.ledger.errors import INVALID_REQUEST, UNKNOWN_ACCOUNT, LedgerError
from activities.ledger.events import _event_params
from activities.ledger.sql import _LOCK_ACCOUNTS
from activities.ledger.validation import _fingerprint, _key, _reused, _text
from models.base import utcnow
from models.ledger.payloads import (
    BatchEntryResult,
    BatchEntryStatus,
    EntryBatchResult,
    EntryResult,
    PostEntryBatchInput,
    PostEntryInput,
    PostingResult,
)

MAX_BATCH_ENTRIES: Final = 10_000

_BATCH_CLAIM = text(
    "INSERT INTO journal_entries (id, idempotency_key, request_hash, kind, description, "
    "created_at) "
    "SELECT e.id, e.key, e.hash, e.kind, e.description, CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:keys AS text[]), CAST(:hashes AS text[]), "
    "CAST(:kinds AS text[]), CAST(:descriptions AS text[])) "
    "AS e(id, key, hash, kind, description) ORDER BY e.key "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)

_BATCH_FIND = text(
    "SELECT id, idempotency_key, request_hash, kind, description, created_at "
    "FROM journal_entries WHERE idempotency_key = ANY(CAST(:keys AS text[]))"
)

_BATCH_POSTINGS = text(
    "SELECT p.entry_id, p.account_id, p.amount, p.currency, p.balance_after, "
    "t.id AS transaction_id FROM postings p LEFT JOIN transactions t "
    "ON t.journal_entry_id = p.entry_id AND t.account_id = p.account_id "
    "WHERE p.entry_id = ANY(CAST(:ids AS uuid[])) ORDER BY p.id"
)

_SAVEPOINT = text("SAVEPOINT ledger_batch")
_RELEASE = text("RELEASE SAVEPOINT ledger_batch")
_ROLLBACK_TO = text("ROLLBACK TO SAVEPOINT ledger_batch")

# The single path's _APPLY_ENTRY with the entry id, kind and time per row instead of per
# statement, and the account deltas summed per account (UPDATE ... FROM changes a row once).
_BATCH_APPLY = text(
    """
WITH acc AS (
    UPDATE ledger_accounts AS a
    SET posted = a.posted + d.dp, held = a.held + d.dh, updated_at = CAST(:now AS timestamptz)
    FROM unnest(CAST(:acc_ids AS uuid[]), CAST(:acc_dp AS bigint[]), CAST(:acc_dh AS bigint[]))
        AS d(id, dp, dh)
    WHERE a.id = d.id
), pst AS (
    INSERT INTO postings (entry_id, account_id, amount, currency, balance_after)
    SELECT p.entry_id, p.account_id, p.amount, p.currency, p.balance_after
    FROM unnest(CAST(:p_entry AS uuid[]), CAST(:p_acc AS uuid[]), CAST(:p_amt AS bigint[]),
                CAST(:p_cur AS text[]), CAST(:p_bal AS bigint[]))
        WITH ORDINALITY AS p(entry_id, account_id, amount, currency, balance_after, n)
    ORDER BY p.n
), txn AS (
    INSERT INTO transactions (id, account_id, user_id, journal_entry_id, kind, amount, currency,
        direction, status, counterparty, description, merchant, category, external_id,
        occurred_at, created_at, updated_at)
    SELECT t.id, t.account_id, t.user_id, t.entry_id, t.kind, t.amount, t.currency,
        t.direction, 'posted', t.counterparty, t.description, t.merchant, t.category,
        t.external_id, t.occurred_at, CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM unnest(CAST(:t_id AS uuid[]), CAST(:t_acc AS uuid[]), CAST(:t_user AS uuid[]),
                CAST(:t_amount AS bigint[]), CAST(:t_cur AS text[]), CAST(:t_dir AS text[]),
                CAST(:t_cp AS text[]), CAST(:t_desc AS text[]), CAST(:t_merchant AS text[]),
                CAST(:t_cat AS text[]), CAST(:t_ext AS text[]), CAST(:t_entry AS uuid[]),
                CAST(:t_kind AS text[]), CAST(:t_occ AS timestamptz[]))
        AS t(id, account_id, user_id, amount, currency, direction, counterparty, description,
             merchant, category, external_id, entry_id, kind, occurred_at)
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


@dataclass(slots=True)
class _Item:
    """One input entry on its way through the batch."""

    index: int
    req: PostEntryInput
    key: str = ""
    request_hash: str = ""
    kind: str = ""
    description: str = ""
    legs: list[_Leg] = field(default_factory=list)
    entry_id: uuid.UUID = field(default_factory=uuid.uuid4)
    duplicate_of: _Item | None = None
    result: BatchEntryResult | None = None


def _reject(item: _Item, key: str, exc: LedgerError) -> None:
    item.result = BatchEntryResult(
        idempotency_key=key,
        status=BatchEntryStatus.REJECTED,
        error_type=exc.type,
        error=exc.message,
    )


def _validate(item: _Item) -> None:
    """The single path's checks that need no database; a rejection becomes the item's result."""
    req = item.req
    try:
        item.key = _key(req.idempotency_key)
        item.kind = _kind(req.kind)
        item.description = _text(req.description, "description", 500) or ""
        item.legs = _entry_legs(req)
        item.request_hash = _fingerprint("post_entry", req, exclude={"idempotency_key"})
    except LedgerError as exc:
        _reject(item, item.key or str(req.idempotency_key)[:200], exc)


def _dedupe(items: Sequence[_Item]) -> list[_Item]:
    """The first item of each key; later ones replay it (or are refused with another body)."""
    first: dict[str, _Item] = {}
    for item in items:
        if item.result is not None:
            continue
        seen = first.get(item.key)
        if seen is None:
            first[item.key] = item
        elif seen.request_hash != item.request_hash:
            _reject(item, item.key, _reused(item.key))
        else:
            item.duplicate_of = seen
    return list(first.values())


async def _replay(conn: AsyncConnection, items: Sequence[_Item]) -> None:
    """Fill in the first results of keys that were used before this batch."""
    if not items:
        return
    by_key = {i.key: i for i in items}
    entries = (await conn.execute(_BATCH_FIND, {"keys": list(by_key)})).all()
    postings: dict[uuid.UUID, list[PostingResult]] = {e.id: [] for e in entries}
    rows = (await conn.execute(_BATCH_POSTINGS, {"ids": list(postings)})).all()
    for r in rows:
        postings[r.entry_id].append(
            PostingResult(
                account_id=r.account_id,
                amount=r.amount,
                currency=r.currency,
                balance_after=r.balance_after,
                transaction_id=r.transaction_id,
            )
        )
    for e in entries:
        item = by_key[e.idempotency_key]
        if e.request_hash != item.request_hash:
            _reject(item, item.key, _reused(item.key))
            continue
        item.result = BatchEntryResult(
            idempotency_key=item.key,
            status=BatchEntryStatus.REPLAYED,
            entry=EntryResult(
                entry_id=e.id,
                idempotency_key=item.key,
                kind=e.kind,
                description=e.description,
                created_at=e.created_at,
                postings=postings[e.id],
            ),
        )


def _apply_in_memory(
    item: _Item, accounts: dict[uuid.UUID, _Account], now: datetime
) -> _Plan | None:
    """Plan one claimed entry against the running balances; None (and a result) if refused."""
    saved = {
        leg.account_id: (accounts[leg.account_id].posted, accounts[leg.account_id].held)
        for leg in item.legs
        if leg.account_id in accounts
    }
    try:
        for leg in item.legs:
            if leg.account_id not in accounts:
                raise LedgerError(
                    UNKNOWN_ACCOUNT, "unknown account", account_id=str(leg.account_id)
                )
        for leg in item.legs:
            if leg.amount < 0:
                _check_owner(accounts[leg.account_id], item.req.owner_user_id)
        return _plan_entry(
            entry_id=item.entry_id,
            kind=item.kind,
            description=item.description,
            legs=item.legs,
            accounts=accounts,
            now=now,
            occurred_at=item.req.occurred_at or now,
        )
    except LedgerError as exc:
        for account_id, (posted, held) in saved.items():
            accounts[account_id].posted, accounts[account_id].held = posted, held
        _reject(item, item.key, exc)
        return None


def _apply_params(plans: Sequence[_Plan], now: datetime) -> dict[str, Any]:
    deltas: dict[uuid.UUID, list[int]] = {}
    params: dict[str, Any] = {c: [] for c in (*_T_COLS, "t_entry", "t_kind", "t_occ")}
    params.update(p_entry=[], p_acc=[], p_amt=[], p_cur=[], p_bal=[])
    events = []
    for plan in plans:
        for acc_id, dp, dh in zip(plan.acc_ids, plan.acc_dp, plan.acc_dh, strict=True):
            d = deltas.setdefault(acc_id, [0, 0])
            d[0] += dp
            d[1] += dh
        params["p_entry"].extend([plan.entry_id] * len(plan.p_acc))
        for name in ("p_acc", "p_amt", "p_cur", "p_bal"):
            params[name].extend(getattr(plan, name))
        for name in _T_COLS:
            params[name].extend(plan.t_cols[name])
        rows = len(plan.t_cols["t_id"])
        params["t_entry"].extend([plan.entry_id] * rows)
        params["t_kind"].extend([plan.kind] * rows)
        params["t_occ"].extend([plan.occurred_at] * rows)
        events.extend(plan.events)
    params.update(
        now=now,
        acc_ids=list(deltas),
        acc_dp=[d[0] for d in deltas.values()],
        acc_dh=[d[1] for d in deltas.values()],
        **_event_params(events),
    )
    return params


async def post_entries(session: AsyncSession, req: PostEntryBatchInput) -> EntryBatchResult:
    """Post many balanced journal entries in the caller's transaction (idempotent per entry)."""
    if len(req.entries) > MAX_BATCH_ENTRIES:
        raise LedgerError(INVALID_REQUEST, f"a batch holds at most {MAX_BATCH_ENTRIES} entries")
    items = [_Item(index=i, req=e) for i, e in enumerate(req.entries)]
    for item in items:
        _validate(item)
    candidates = _dedupe(items)
    conn = await session.connection()
    now = utcnow()
    plans: list[_Plan] = []
    while candidates:
        # The ledger is append-only, so a claimed header cannot be deleted: the claims and
        # locks of a pass sit in a savepoint, and a pass with a rejection is undone and
        # repeated without the rejected entries (balances re-read under the new locks).
        await conn.execute(_SAVEPOINT)
        plans, rejected = await _pass(conn, candidates, now)
        if not rejected:
            await conn.execute(_RELEASE)
            break
        await conn.execute(_ROLLBACK_TO)
        if req.atomic:
            break
        # Entries planned in this pass are tried again; replays and rejections are final.
        candidates = [
            i for i in candidates if i.result and i.result.status is BatchEntryStatus.POSTED
        ]
        plans = []
    if req.atomic:
        first_refusal = next(
            (i for i in items if i.result and i.result.status is BatchEntryStatus.REJECTED), None
        )
        if first_refusal is not None and first_refusal.result is not None:
            r = first_refusal.result
            raise LedgerError(
                r.error_type or INVALID_REQUEST,
                r.error or "rejected",
                index=first_refusal.index,
                idempotency_key=r.idempotency_key,
            )
    if plans:
        await conn.execute(_BATCH_APPLY, _apply_params(plans, now))
    return _collect(items)


async def _pass(
    conn: AsyncConnection, candidates: Sequence[_Item], now: datetime
) -> tuple[list[_Plan], list[_Item]]:
    """Claim the keys, replay the used ones, lock and plan the rest; the plans and rejections."""
    rows = await conn.execute(
        _BATCH_CLAIM,
        {
            "now": now,
            "ids": [i.entry_id for i in candidates],
            "keys": [i.key for i in candidates],
            "hashes": [i.request_hash for i in candidates],
            "kinds": [i.kind for i in candidates],
            "descriptions": [i.description for i in candidates],
        },
    )
    claimed = {row.id for row in rows}
    await _replay(conn, [i for i in candidates if i.entry_id not in claimed])
    new = [i for i in candidates if i.entry_id in claimed]
    wanted = sorted({leg.account_id for i in new for leg in i.legs})
    locked = (await conn.execute(_LOCK_ACCOUNTS, {"ids": wanted})).all() if wanted else []
    accounts = {row.id: _Account(*row) for row in locked}
    plans: list[_Plan] = []
    rejected: list[_Item] = []
    for item in new:  # input order: each entry sees the balances its predecessors left
        plan = _apply_in_memory(item, accounts, now)
        if plan is None:
            rejected.append(item)
            continue
        plans.append(plan)
        item.result = BatchEntryResult(
            idempotency_key=item.key,
            status=BatchEntryStatus.POSTED,
            entry=EntryResult(
                entry_id=item.entry_id,
                idempotency_key=item.key,
                kind=item.kind,
                description=item.description,
                created_at=now,
                postings=[r for r in plan.results if r.amount != 0],
            ),
        )
    return plans, rejected


def _collect(items: Sequence[_Item]) -> EntryBatchResult:
    out: list[BatchEntryResult] = []
    for item in items:
        result = item.result
        if item.duplicate_of is not None:
            first = item.duplicate_of.result
            assert first is not None
            result = (
                first
                if first.status is BatchEntryStatus.REJECTED
                else first.model_copy(update={"status": BatchEntryStatus.REPLAYED})
            )
        assert result is not None
        out.append(result)
    return EntryBatchResult(
        results=out,
        posted=sum(r.status is BatchEntryStatus.POSTED for r in out),
        replayed=sum(r.status is BatchEntryStatus.REPLAYED for r in out),
        rejected=sum(r.status is BatchEntryStatus.REJECTED for r in out),
    )
