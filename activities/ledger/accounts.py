"""Opening customer accounts, the per-currency system accounts, and account numbers."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.ledger.engine import _ensure_system_accounts
from activities.ledger.errors import INVALID_REQUEST, UNKNOWN_USER, LedgerError
from activities.ledger.events import _Event, _write_events
from activities.ledger.validation import _currency, _fingerprint, _first_result, _key, _text
from models.base import utcnow
from models.ledger.payloads import (
    EnsureSystemAccountsInput,
    OpenAccountInput,
    OpenedAccount,
    SystemAccounts,
)


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
            opened, event = _opened(req, account_id, number, currency, name, now)
            await _write_events(conn, [event], now)
            return opened
        # Either a concurrent request with the same key won, or the number was taken.
        if (first := await replay()) is not None:
            return first
    raise RuntimeError("could not allocate a unique account number")  # pragma: no cover


def _opened(
    req: OpenAccountInput,
    account_id: uuid.UUID,
    number: str,
    currency: str,
    name: str | None,
    now: datetime,
) -> tuple[OpenedAccount, _Event]:
    """An opened account's result and its `account.opened` event."""
    opened = OpenedAccount(
        account_id=account_id,
        number=number,
        owner_user_id=req.owner_user_id,
        currency=currency,
        type=req.type,
        opened_at=now,
    )
    payload = {**opened.model_dump(mode="json"), "name": name}
    return opened, _Event("account.opened", account_id, req.owner_user_id, payload)


async def open_accounts(
    session: AsyncSession, reqs: Sequence[OpenAccountInput]
) -> list[OpenedAccount]:
    """Open many customer accounts at once (a migration's page): the same checks, numbers,
    idempotency and `account.opened` events as `open_account`, in a few statements for the
    whole list instead of several per account. Results are in the order of `reqs`."""
    if not reqs:
        return []
    prepared = [
        (
            _key(req.idempotency_key),
            _currency(req.currency),
            _text(req.name, "name", 100, required=True),
            _fingerprint("open_account", req, exclude={"idempotency_key"}),
        )
        for req in reqs
    ]
    conn = await session.connection()
    keys = [key for key, *_ in prepared]
    if len(set(keys)) != len(keys):
        raise LedgerError(INVALID_REQUEST, "an idempotency key appears twice in the list")
    used = set(
        (
            await conn.execute(
                text("SELECT idempotency_key FROM ledger_accounts WHERE idempotency_key = ANY(:k)"),
                {"k": keys},
            )
        ).scalars()
    )
    owners = {req.owner_user_id for req in reqs}
    known = set(
        (
            await conn.execute(
                text("SELECT id FROM users WHERE id = ANY(:ids)"), {"ids": list(owners)}
            )
        ).scalars()
    )
    if unknown := owners - known:
        raise LedgerError(UNKNOWN_USER, "unknown user", user_id=str(min(unknown)))
    for currency in sorted({currency for _, currency, _, _ in prepared}):
        await _ensure_system_accounts(conn, currency)
    now = utcnow()
    fresh = [
        (req, key, currency, name, digest, uuid.uuid4(), new_account_number())
        for req, (key, currency, name, digest) in zip(reqs, prepared, strict=True)
        if key not in used
    ]
    inserted = set(
        (
            await conn.execute(
                text(
                    "INSERT INTO ledger_accounts (id, kind, type, owner_user_id, name, number, "
                    "currency, status, posted, held, idempotency_key, request_hash, opened_at, "
                    "updated_at) SELECT id, 'customer', type, owner, name, number, currency, "
                    "'open', 0, 0, key, hash, :now, :now FROM unnest(CAST(:ids AS uuid[]), "
                    "CAST(:types AS text[]), CAST(:owners AS uuid[]), CAST(:names AS text[]), "
                    "CAST(:numbers AS text[]), CAST(:currencies AS text[]), "
                    "CAST(:keys AS text[]), CAST(:hashes AS text[])) "
                    "AS r(id, type, owner, name, number, currency, key, hash) "
                    "ON CONFLICT DO NOTHING RETURNING id"
                ),
                {
                    "now": now,
                    "ids": [f[5] for f in fresh],
                    "types": [f[0].type.value for f in fresh],
                    "owners": [f[0].owner_user_id for f in fresh],
                    "names": [f[3] for f in fresh],
                    "numbers": [f[6] for f in fresh],
                    "currencies": [f[2] for f in fresh],
                    "keys": [f[1] for f in fresh],
                    "hashes": [f[4] for f in fresh],
                },
            )
        ).scalars()
    )
    opened: dict[str, OpenedAccount] = {}
    events: list[_Event] = []
    for req, key, currency, name, _, account_id, number in fresh:
        if account_id not in inserted:
            continue  # a number taken (or the key, concurrently): the single path below
        opened[key], event = _opened(req, account_id, number, currency, name, now)
        events.append(event)
    await _write_events(conn, events, now)
    # Keys used before are replayed (or refused if reused for another request) one by one.
    return [
        opened[key] if key in opened else await open_account(session, req)
        for req, (key, *_) in zip(reqs, prepared, strict=True)
    ]
