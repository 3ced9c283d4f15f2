"""`vortex legacy seed`: realistic monolith data (bcrypt users, accounts, history), and on
request the kinds of broken rows a decade-old monolith holds (for quarantine tests)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
import bcrypt

from legacysim.schema import legacy_dsn

CURRENCIES = ("EUR", "EUR", "EUR", "GBP", "USD")
FIRST = ("Ada", "Ben", "Chloe", "Dan", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kim")
LAST = ("Andersen", "Brown", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Horvat", "Ito")
MERCHANTS = ("Grocer", "Coffee Bar", "Railways", "Bookshop", "Pharmacy", "Cinema", "Salary")
ORPHAN_ACCOUNT_ID = 10**12  # no account has this id: its transactions are orphans


def legacy_password(tag: str, index: int) -> str:
    """The seeded password of user `index` (a simulator: tests log in with it)."""
    return f"old-{tag}-password-{index}"


@dataclass
class SeedResult:
    """What was seeded: the users' credentials and row counts (invalid rows included)."""

    credentials: list[tuple[str, str]] = field(default_factory=list)
    users: int = 0
    accounts: int = 0
    transactions: int = 0
    invalid: int = 0


def _history(rng: random.Random, count: int) -> list[tuple[Decimal, str, str]]:
    """Signed amounts that never take the balance below zero: a deposit first."""
    rows = [(Decimal(rng.randint(50_000, 300_000)) / 100, "Opening deposit", "Salary")]
    balance = rows[0][0]
    for _ in range(count - 1):
        merchant = rng.choice(MERCHANTS)
        if merchant == "Salary" or balance < 10:
            amount = Decimal(rng.randint(10_000, 250_000)) / 100
        else:
            amount = -min(balance, Decimal(rng.randint(100, 9_000)) / 100)
        balance += amount
        rows.append((amount, f"{merchant} payment", merchant))
    return rows


async def seed(
    url: str,
    *,
    users: int,
    tag: str = "s",
    invalid: bool = False,
    rounds: int = 8,
    history: int = 6,
    rng_seed: int = 11,
) -> SeedResult:
    """Insert `users` users (1-2 accounts each, `history` transactions per account)."""
    rng = random.Random(rng_seed)  # noqa: S311 - simulated data, not security
    result = SeedResult()
    conn = await asyncpg.connect(legacy_dsn(url))
    try:
        async with conn.transaction():
            for i in range(users):
                password = legacy_password(tag, i)
                email = f"user{i}.{tag}@legacy.example"
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                await _user_with_accounts(conn, rng, email, password, name, rounds, history)
                result.credentials.append((email, password))
                result.users += 1
            result.accounts, result.transactions = await _counts(conn)
            if invalid:
                result.invalid = await _invalid_rows(conn, rounds)
    finally:
        await conn.close()
    return result


async def _user_with_accounts(
    conn: asyncpg.Connection,
    rng: random.Random,
    email: str,
    password: str,
    name: str,
    rounds: int,
    history: int,
) -> None:
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    user_id = await conn.fetchval(
        "INSERT INTO users (email, password_digest, full_name) VALUES ($1, $2, $3) RETURNING id",
        email,
        digest,
        name,
    )
    for n in range(rng.choice((1, 1, 2))):
        rows = _history(rng, history)
        account_id = await conn.fetchval(
            "INSERT INTO accounts (user_id, name, kind, currency, balance) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            user_id,
            "Main account" if n == 0 else "Savings",
            "checking" if n == 0 else "savings",
            rng.choice(CURRENCIES),
            sum((a for a, _, _ in rows), Decimal(0)),
        )
        await conn.executemany(
            "INSERT INTO transactions (account_id, amount, description, counterparty) "
            "VALUES ($1, $2, $3, $4)",
            [(account_id, a, d, c) for a, d, c in rows],
        )


async def _counts(conn: asyncpg.Connection) -> tuple[int, int]:
    accounts = await conn.fetchval("SELECT count(*) FROM accounts")
    transactions = await conn.fetchval("SELECT count(*) FROM transactions")
    return int(accounts), int(transactions)


async def _invalid_rows(conn: asyncpg.Connection, rounds: int) -> int:
    """One row of each kind the migration must quarantine; returns how many were written."""
    digest = bcrypt.hashpw(b"whatever-password", bcrypt.gensalt(rounds=rounds)).decode()
    bad_user = await conn.fetchval(
        "INSERT INTO users (email, password_digest, full_name) "
        "VALUES ('not-an-email', $1, 'Broken Email') RETURNING id",
        digest,
    )
    good_user = await conn.fetchval("SELECT min(id) FROM users WHERE email LIKE '%@%'")
    await conn.execute(
        "INSERT INTO accounts (user_id, name, currency, balance) VALUES "
        "($1, 'Overdrawn by a bug', 'EUR', -12.50), ($1, 'Odd money', 'XXZ', 40.00)",
        good_user,
    )
    await conn.execute(
        "INSERT INTO transactions (account_id, amount, description) VALUES ($1, 9.99, 'orphan')",
        ORPHAN_ACCOUNT_ID,
    )
    return 4 if bad_user else 3
