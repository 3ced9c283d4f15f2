"""The monolith's HTTP face (FastAPI), in its older shape: `username` logins, a `Token` header,
balances as decimal strings, signed transaction amounts. Built by `create_legacy_app(url)`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import asyncpg
import bcrypt
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from legacysim.schema import FREEZE_LOCK_KEY, legacy_dsn

PROBLEM_BASE = "https://legacy.vortexcore.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_AMOUNT = Decimal("999999999999.99")

router = APIRouter(prefix="/api")


class LegacyError(Exception):
    """An error the monolith answers as problem+json."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail


class LoginRequest(BaseModel):
    """The monolith's login body (it called the email a username)."""

    username: str = Field(max_length=255)
    password: str = Field(max_length=200)


class SignupRequest(BaseModel):
    """Create a user in the monolith."""

    email: str = Field(max_length=255)
    password: str = Field(min_length=1, max_length=200)
    full_name: str = Field(default="", max_length=200)


class AccountRequest(BaseModel):
    """Open an account in the monolith."""

    currency: str = Field(min_length=3, max_length=3)
    kind: str = Field(default="checking", pattern="^(checking|savings)$")
    name: str = Field(default="Account", max_length=100)


class TransactionRequest(BaseModel):
    """A signed amount on one of the caller's accounts (negative = money out)."""

    account_id: int
    amount: str = Field(max_length=20)
    description: str = Field(default="", max_length=500)
    counterparty: str | None = Field(default=None, max_length=200)


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


Pool = Annotated[asyncpg.Pool, Depends(_pool)]


def _sign(secret: bytes, user_id: int) -> str:
    mac = hmac.new(secret, str(user_id).encode(), hashlib.sha256).hexdigest()[:32]
    return f"{user_id}.{mac}"


def _caller(request: Request, authorization: Annotated[str, Header()] = "") -> int:
    scheme, _, token = authorization.partition(" ")
    user_part, _, _ = token.partition(".")
    if scheme != "Token" or not user_part.isdigit():
        raise LegacyError(401, "unauthorized", "send 'Authorization: Token <token>'")
    user_id = int(user_part)
    if not hmac.compare_digest(_sign(request.app.state.secret, user_id), token):
        raise LegacyError(401, "unauthorized", "invalid token")
    return user_id


Caller = Annotated[int, Depends(_caller)]


async def _refuse_if_frozen(conn: asyncpg.Connection, *domains: str) -> None:
    # Held until commit: a freeze (exclusive) waits for this write, or this write for it.
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", FREEZE_LOCK_KEY)
    frozen = await conn.fetchval(
        "SELECT domain FROM frozen_domains WHERE domain = ANY($1::text[]) LIMIT 1", list(domains)
    )
    if frozen is not None:
        raise LegacyError(
            423, "domain-frozen", f"the {frozen} domain has moved to the new platform"
        )


def _account_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "currency": row["currency"],
        "balance": str(row["balance"]),
        "opened": row["created_at"].isoformat(),
    }


@router.post("/auth/login")
async def login(body: LoginRequest, request: Request, pool: Pool) -> dict[str, Any]:
    """Check a bcrypt password; answers a legacy token."""
    row = await pool.fetchrow(
        "SELECT id, password_digest FROM users WHERE lower(email) = lower($1) ORDER BY id LIMIT 1",
        body.username,
    )
    ok = row is not None and bcrypt.checkpw(body.password.encode(), row["password_digest"].encode())
    if row is None or not ok:
        raise LegacyError(401, "bad-credentials", "wrong username or password")
    return {"token": _sign(request.app.state.secret, row["id"]), "user_id": row["id"]}


@router.post("/auth/signup", status_code=201)
async def signup(body: SignupRequest, pool: Pool) -> dict[str, Any]:
    """Create a user (the monolith checked almost nothing)."""
    digest = bcrypt.hashpw(body.password.encode(), bcrypt.gensalt(rounds=4)).decode()
    async with pool.acquire() as conn, conn.transaction():
        await _refuse_if_frozen(conn, "users")
        user_id = await conn.fetchval(
            "INSERT INTO users (email, password_digest, full_name) VALUES ($1, $2, $3) "
            "RETURNING id",
            body.email,
            digest,
            body.full_name,
        )
    return {"user_id": user_id}


@router.get("/accounts")
async def list_accounts(user_id: Caller, pool: Pool) -> dict[str, Any]:
    """The caller's accounts with their balances."""
    rows = await pool.fetch("SELECT * FROM accounts WHERE user_id = $1 ORDER BY id", user_id)
    return {"accounts": [_account_view(r) for r in rows]}


@router.post("/accounts", status_code=201)
async def open_account(body: AccountRequest, user_id: Caller, pool: Pool) -> dict[str, Any]:
    """Open an account at zero."""
    async with pool.acquire() as conn, conn.transaction():
        await _refuse_if_frozen(conn, "accounts")
        row = await conn.fetchrow(
            "INSERT INTO accounts (user_id, name, kind, currency) VALUES ($1, $2, $3, $4) "
            "RETURNING *",
            user_id,
            body.name,
            body.kind,
            body.currency.upper(),
        )
    return {"account": _account_view(row)}


@router.get("/transactions")
async def list_transactions(
    user_id: Caller, pool: Pool, account_id: int, limit: int = 100
) -> dict[str, Any]:
    """The newest transactions of one of the caller's accounts."""
    rows = await pool.fetch(
        "SELECT t.* FROM transactions t JOIN accounts a ON a.id = t.account_id "
        "WHERE a.user_id = $1 AND t.account_id = $2 ORDER BY t.id DESC LIMIT $3",
        user_id,
        account_id,
        max(1, min(limit, 500)),
    )
    return {
        "transactions": [
            {
                "id": r["id"],
                "amount": str(r["amount"]),
                "description": r["description"],
                "counterparty": r["counterparty"],
                "date": r["created_at"].isoformat(),
            }
            for r in rows
        ]
    }


def _amount(raw: str) -> Decimal:
    try:
        amount = Decimal(raw)
    except InvalidOperation as exc:
        raise LegacyError(400, "bad-amount", "amount must be a decimal string") from exc
    if not amount.is_finite() or amount == 0 or abs(amount) > MAX_AMOUNT:
        raise LegacyError(400, "bad-amount", "amount must be non-zero and in range")
    if amount != amount.quantize(Decimal("0.01")):
        raise LegacyError(400, "bad-amount", "at most two decimals")
    return amount


@router.post("/transactions", status_code=201)
async def create_transaction(
    body: TransactionRequest, user_id: Caller, pool: Pool
) -> dict[str, Any]:
    """Book a signed amount and update the balance (refused below zero)."""
    amount = _amount(body.amount)
    async with pool.acquire() as conn, conn.transaction():
        await _refuse_if_frozen(conn, "accounts", "transactions")
        balance = await conn.fetchval(
            "UPDATE accounts SET balance = balance + $1, updated_at = now() "
            "WHERE id = $2 AND user_id = $3 AND balance + $1 >= 0 RETURNING balance",
            amount,
            body.account_id,
            user_id,
        )
        if balance is None:
            raise LegacyError(409, "refused", "unknown account or insufficient funds")
        tx_id = await conn.fetchval(
            "INSERT INTO transactions (account_id, amount, description, counterparty) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            body.account_id,
            amount,
            body.description,
            body.counterparty,
        )
    return {"transaction_id": tx_id, "balance": str(balance)}


def _problem(status: int, slug: str, detail: str) -> JSONResponse:
    body = {"type": PROBLEM_BASE + slug, "title": slug.replace("-", " "), "status": status}
    body["detail"] = detail
    return JSONResponse(body, status, media_type=PROBLEM_MEDIA_TYPE)


async def _legacy_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LegacyError)
    return _problem(exc.status, exc.slug, exc.detail)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    return _problem(422, "invalid-request", "the request body or query is invalid")


def create_legacy_app(
    database_url: str,
    *,
    secret: str = "legacy-dev-secret",  # noqa: S107 - a simulator's token key
) -> FastAPI:
    """The monolith's ASGI app on the database `database_url` (schema created beforehand)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(legacy_dsn(database_url), min_size=1, max_size=5)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="Legacy VortexCore (simulator)", lifespan=lifespan)
    app.state.secret = secret.encode()
    app.include_router(router)
    app.add_exception_handler(LegacyError, _legacy_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    return app
