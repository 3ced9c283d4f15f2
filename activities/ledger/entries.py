"""Journal entries: multi-leg entries, transfers, ops funding and external card/cash entries."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from activities.ledger.engine import _Leg, _post, _system_account_id
from activities.ledger.errors import INVALID_REQUEST, UNBALANCED_ENTRY, LedgerError
from activities.ledger.validation import (
    _EXTERNAL_KINDS,
    _KIND_RE,
    MAX_LEGS,
    _amount,
    _category,
    _currency,
    _fingerprint,
    _key,
    _text,
)
from models.audit import record_audit
from models.ledger.payloads import (
    EntryResult,
    ExternalEntryInput,
    ExternalTransactionResult,
    FundAccountInput,
    LedgerTransferInput,
    PostEntryInput,
)
from models.ledger.tables import (
    AccountKind,
    Direction,
)


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
