# ruff: noqa: F811 - pytest fixtures imported from tests.payment_support are parameter names
"""No route lets a customer create money, or move money out of the bank except through the rail.

A sweep generated from the OpenAPI calls every operation the app serves with a customer's
(the attacker's) token and valid, aggressive bodies built from a small JSON-schema generator:
the attacker's own account ids and numbers, another customer's (the victim's), amounts like
5000.00, 0.01 and -5000.00, every enum value (a credit memo as well as a debit one), fresh
Idempotency-Keys, the attacker's real TOTP codes, and forged deliveries to the signed feeds.
After every call, and again once the workflows have finished, the books must show that

- the attacker's posted total per currency never exceeds what ops funded (no entry gives the
  attacker money);
- the victim's posted total never goes down, and grows only by transfers the attacker asked for
  (entries whose debit leg is an attacker account);
- every posting on an external settlement account (money leaving or entering the bank) belongs to
  a payment the rail knows: the capture of an external payment the rail settled, or a link's
  micro-deposit the rail carried; nothing reaches suspense;
- no memo points at a journal entry or hold, and the ledger's invariant check passes;
- no answer is a 5xx, and the signed feeds refuse every unsigned or forged delivery with 401.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from itertools import zip_longest
from typing import Any, Final

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.linking import micro_deposit_amounts
from api.app import create_app
from api.auth.sessions import SessionService
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.signatures import PROCESSOR_SIGNATURE_HEADER, SIGNATURE_HEADER, sign
from models.base import utcnow
from models.currency import format_amount
from models.ledger import Direction
from processorsim import processor_event
from tests.flows import Customer, fund, register_customer
from tests.ledger_support import assert_ledger_ok, new_user, open_account
from tests.payment_support import (  # noqa: F401 - fixtures
    FINAL,
    GOOD_IBAN,
    api,
    api_port,
    approval_timeout,
    poll_interval,
    rail,
    rail_payment,
    settings,
    submit_max_attempts,
    webhooks_enabled,
    wrong_totp,
)
from tests.rail_support import eventually

MAX_VARIANTS: Final = 6
SETTLE_SECONDS: Final = 30.0
STEP_SECONDS: Final = 30
# What a customer's request may ever cause in the ledger: transfers it asked for, the capture
# of its external payment, a sweep between its own accounts when closing one, and the bank's
# micro-deposits to an external account it links (paid by the bank, never by a customer).
ALLOWED_ENTRY_KINDS: Final = frozenset(
    {"transfer", "hold_capture", "sweep", "micro_deposit", "micro_deposit_return"}
)
MICRO_DEPOSIT_KINDS: Final = frozenset({"micro_deposit", "micro_deposit_return"})
JSON = Any


class Slot(Enum):
    """Placeholders in the world's candidate lists, resolved when a request is built."""

    OMIT = "omit"  # leave the field out (the server's default applies)
    TOTP = "totp"  # the attacker's next valid TOTP code (a wrong one once none is left)
    KEY = "key"  # a fresh Idempotency-Key
    NEW_EMAIL = "new-email"  # an address nobody has registered


OMIT: Final = Slot.OMIT


@dataclass(frozen=True)
class Account:
    """A customer account as its owner knows it."""

    id: str
    number: str
    currency: str


@dataclass
class World:
    """Everything the attacker knows or can name, and the victim's identifiers it may try."""

    attacker: Customer
    attacker_id: uuid.UUID
    victim_id: uuid.UUID
    victim_auth: dict[str, str]
    a_main: Account
    a_spare: Account
    a_usd: Account
    v_main: Account
    v_spare: Account
    services: Services
    # Refreshed from the database before each operation (ids created by earlier calls).
    a_payments: list[str] = field(default_factory=list)
    v_payments: list[str] = field(default_factory=list)
    a_transactions: list[str] = field(default_factory=list)
    v_transactions: list[str] = field(default_factory=list)
    a_links: list[str] = field(default_factory=list)
    v_links: list[str] = field(default_factory=list)
    a_methods: list[str] = field(default_factory=list)
    v_methods: list[str] = field(default_factory=list)
    link_currency: dict[str, str] = field(default_factory=dict)

    async def refresh(self, sessions: SessionFactory) -> None:
        """Reload the ids of payments, transactions, links and payment methods of both."""
        owners = {"a": self.attacker_id, "v": self.victim_id}
        async with sessions() as session:
            payments = (
                await session.execute(
                    text(
                        "SELECT id, user_id FROM payments WHERE user_id IN (:a, :v) "
                        "ORDER BY (status = 'pending_approval') DESC, created_at, id"
                    ),
                    owners,
                )
            ).all()
            transactions = (
                await session.execute(
                    text(
                        "SELECT id, user_id FROM transactions WHERE user_id IN (:a, :v) ORDER BY "
                        "row_number() OVER (PARTITION BY user_id, status ORDER BY created_at, id), "
                        "(status = 'memo') DESC, created_at, id"
                    ),
                    owners,
                )
            ).all()
            links = (
                await session.execute(
                    text(
                        "SELECT l.id, l.user_id, a.currency FROM linked_accounts l "
                        "JOIN ledger_accounts a ON a.id = l.account_id "
                        "WHERE l.user_id IN (:a, :v) "
                        "ORDER BY (l.account_id = :main) DESC, l.created_at, l.id"
                    ),
                    owners | {"main": uuid.UUID(self.a_main.id)},
                )
            ).all()
            methods = (
                await session.execute(
                    text(
                        "SELECT id, user_id FROM payment_methods WHERE user_id IN (:a, :v) "
                        "AND deleted_at IS NULL ORDER BY (kind = 'iban') DESC, created_at, id"
                    ),
                    owners,
                )
            ).all()

        def split(rows: Any) -> tuple[list[str], list[str]]:
            mine = [str(r.id) for r in rows if r.user_id == self.attacker_id]
            theirs = [str(r.id) for r in rows if r.user_id == self.victim_id]
            return mine, theirs

        self.a_payments, self.v_payments = split(payments)
        self.a_transactions, self.v_transactions = split(transactions)
        self.a_links, self.v_links = split(links)
        self.a_methods, self.v_methods = split(methods)
        self.link_currency = {str(r.id): str(r.currency) for r in links}

    def _deposits(self, link_id: str | None) -> list[str]:
        """A link's two micro-deposit amounts (what its holder reads on the external statement)."""
        if link_id is None:
            return ["0.01", "0.02"]
        currency = self.link_currency.get(link_id, "EUR")
        amounts = micro_deposit_amounts(self.services.crypto, uuid.UUID(link_id))
        return [format_amount(a, currency) for a in amounts]

    def candidates(self, name: str) -> list[Any] | None:
        """Values to try for a field or parameter of this name (index = variant), or None to
        let the schema decide. The lists line up across the fields of one request, so that e.g.
        variant 0 of a transfer is the attacker paying the victim and variant 2 the attacker
        pulling from the victim's account."""
        a, v, me = self.a_main, self.v_main, self.attacker

        def first(ids: list[str]) -> str | None:
            return ids[0] if ids else None

        soon = (utcnow() + timedelta(seconds=3)).isoformat()
        table: dict[str, list[Any]] = {
            # Transfers, external payments and memos, variant by variant:
            #   0 own account, big amount   1 own account, tiny amount   2 the victim's account
            #   3 own account, negative     4 spare account              5 the victim's, huge
            "from_account_id": [a.id, a.id, v.id, a.id, self.a_spare.id, v.id],
            "to_account_number": [v.number, OMIT, a.number, v.number, a.number, OMIT],
            "to_account_id": [OMIT, self.a_spare.id, OMIT, OMIT, OMIT, a.id],
            "amount": ["5000.00", "0.01", "5000.00", "-5000.00", "0.01", "99999999.99"],
            "currency": ["EUR", "EUR", "EUR", "EUR", "EUR", "USD"],
            "execute_at": [OMIT, OMIT, OMIT, OMIT, soon, OMIT],
            "payment_method_id": [
                *([first(self.a_methods)] * 4),
                first(self.v_methods),
                first(self.v_methods),
            ],
            # Memos (with direction debit/credit alternating), links, account routes:
            "account_id": [a.id, a.id, v.id, self.a_spare.id, v.id, self.a_usd.id],
            "sweep_to_account_id": [v.id, a.id],
            "include_closed": [False, True],
            # Ids of things, the attacker's interleaved with the victim's:
            "payment_id": _interleave(self.a_payments, self.v_payments),
            "transaction_id": _interleave(self.a_transactions, self.v_transactions),
            "link_id": _interleave(self.a_links, self.v_links),
            "method_id": _interleave(self.a_methods, self.v_methods),
            "registration_id": [me.registration_id, str(uuid.uuid4())],
            "amounts": [
                self._deposits(first(self.a_links)),
                self._deposits(first(self.v_links)),
                ["0.01", "0.02"],
            ],
            # Credentials the attacker has, and its codes:
            "Idempotency-Key": [Slot.KEY],
            "email": [me.email, Slot.NEW_EMAIL],
            "password": [me.password],
            "totp_code": [Slot.TOTP],
            "code": [Slot.TOTP],
            "recovery_code": [OMIT, OMIT, me.recovery_codes[0]],
            "challenge_token": [OMIT],
            "refresh_token": [me.refresh_token],
            # Beneficiaries, cards, names and texts:
            "iban": [GOOD_IBAN],
            "card_token": [OMIT, "tok_mallory_0001"],
            "last4": [OMIT, "4242"],
            "name": ["Mallory"],
            "holder_name": ["Mallory Attacker"],
            "first_name": ["Mallory"],
            "last_name": ["Attacker"],
            "description": ["Invoice 42"],
            "merchant": ["Mallory Shop", OMIT],
            "counterparty": [OMIT, "Victor Victim"],
            "category": ["groceries", "income"],
            "occurred_at": [OMIT, utcnow().isoformat()],
            # Read filters:
            "q": ["Invoice"],
            "cursor": [OMIT],
            "from": [OMIT, "2020-01-01"],
            "to": [OMIT, OMIT, "2100-01-01"],
            "min_amount": [OMIT, "0.01"],
            "max_amount": [OMIT, OMIT, "5000.00"],
        }
        values = table.get(name)
        if values is None:
            return None
        return [str(uuid.uuid4()) if value is None else value for value in values]

    def totp(self) -> str:
        """The attacker's next unused TOTP code, or a wrong code once the window is used up."""
        now_step = int(time.time()) // STEP_SECONDS
        if max(self.attacker.last_step + 1, now_step - 1) > now_step + 1:
            return wrong_totp(self.attacker.totp_secret)
        return self.attacker.fresh_totp()

    async def sync_totp(self, sessions: SessionFactory) -> None:
        """Take the last step the server accepted (a code the server never checked is unused)."""
        async with sessions() as session:
            step = await session.scalar(
                text("SELECT totp_last_step FROM users WHERE id = :id"), {"id": self.attacker_id}
            )
        self.attacker.last_step = int(step or 0)

    async def keep_session(self, api: httpx.AsyncClient) -> None:
        """After an auth call (logout, refresh-token reuse): a new session if the token died."""
        answer = await api.get("/api/auth/profile", headers=self.attacker.auth)
        if answer.status_code == 401:
            pair = await SessionService(self.services).issue_session(self.attacker_id)
            self.attacker.access_token = pair.access_token
            self.attacker.refresh_token = pair.refresh_token

    def feed_deliveries(self, path: str) -> list[tuple[bytes, dict[str, str]]]:
        """Forged deliveries to a signed feed: what a customer can send without the secret."""
        now = int(time.time())
        token = self.attacker.access_token
        if path == "/api/webhooks/rail":
            inbound = _json_bytes(
                {
                    "event_id": f"evt_{uuid.uuid4().hex}",
                    "type": "inbound.received",
                    "inbound_id": f"in_{uuid.uuid4().hex}",
                    "to_account_number": self.a_main.number,
                    "amount": 500_000,
                    "currency": "EUR",
                    "debtor_name": "Nobody",
                    "debtor_iban": GOOD_IBAN,
                    "reference": "free money",
                    "occurred_at": utcnow().isoformat(),
                }
            )
            settled = _json_bytes(
                {
                    "event_id": f"evt_{uuid.uuid4().hex}",
                    "type": "payment.settled",
                    "rail_payment_id": f"rp_{uuid.uuid4().hex}",
                    "reference": self.a_payments[0] if self.a_payments else str(uuid.uuid4()),
                    "status": "settled",
                    "amount": 150_000,
                    "currency": "EUR",
                    "occurred_at": utcnow().isoformat(),
                }
            )
            return [
                (inbound, {}),
                (inbound, {SIGNATURE_HEADER: sign(token, inbound, now)}),
                (settled, {SIGNATURE_HEADER: f"t={now},v1={'0' * 64}"}),
                (inbound, {SIGNATURE_HEADER: sign(token, inbound, 0)}),
            ]
        assert path == "/api/processor/events", f"no forged deliveries for {path}"
        credit = processor_event(
            self.a_main.number, "5000.00", "EUR", direction=Direction.CREDIT
        ).model_dump_json()
        debit = processor_event(self.v_main.number, "5000.00", "EUR").model_dump_json()
        credit_bytes, debit_bytes = credit.encode(), debit.encode()
        return [
            (credit_bytes, {}),
            (credit_bytes, {PROCESSOR_SIGNATURE_HEADER: sign(token, credit_bytes, now)}),
            (debit_bytes, {PROCESSOR_SIGNATURE_HEADER: f"t={now},v1={'0' * 64}"}),
            (credit_bytes, {SIGNATURE_HEADER: sign(token, credit_bytes, now)}),
        ]


def _interleave(mine: list[str], theirs: list[str]) -> list[Any]:
    """Up to MAX_VARIANTS ids: the attacker's first, the victim's second, and so on."""
    out = [x for pair in zip_longest(mine, theirs) for x in pair if x is not None]
    return out[:MAX_VARIANTS] or [None]


def _json_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


# --- the generator ---------------------------------------------------------------------------


@dataclass
class Call:
    """One request of the sweep."""

    method: str
    path: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: JSON = None
    raw: bytes | None = None
    uses_totp: bool = False
    feed: bool = False

    def key(self) -> str:
        """What makes two variants the same request (fresh keys and codes aside)."""
        payload = self.raw.decode() if self.raw is not None else self.body
        signature = sorted(k for k in self.headers if k != "Idempotency-Key")
        return json.dumps([self.url, self.params, payload, signature], sort_keys=True, default=str)

    def describe(self, response: httpx.Response | None = None) -> str:
        """For failure messages."""
        sent = self.raw.decode()[:300] if self.raw is not None else json.dumps(self.body)[:300]
        answer = f" -> {response.status_code} {response.text[:300]}" if response else ""
        return f"{self.method} {self.url} params={self.params} body={sent}{answer}"


class Generator:
    """Builds requests for an operation from its OpenAPI description and the world."""

    def __init__(self, spec: dict[str, Any], world: World) -> None:
        self._schemas: dict[str, Any] = spec["components"]["schemas"]
        self._world = world
        self._width = 1
        self._totp = False

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self._schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def _slot(self, value: Any) -> Any:
        if value is Slot.TOTP:
            self._totp = True
            return self._world.totp()
        if value is Slot.KEY:
            return f"sweep-{uuid.uuid4()}"
        if value is Slot.NEW_EMAIL:
            return f"mallory-{uuid.uuid4().hex[:8]}@example.com"
        return value

    def value(self, name: str, schema: dict[str, Any], i: int, *, required: bool) -> Any:
        """A value for a field (OMIT to leave it out): the world's by name, else the schema's."""
        picked = self._world.candidates(name)
        if picked is not None:
            self._width = max(self._width, len(picked))
            chosen = picked[i % len(picked)]
            if chosen is OMIT and required:
                chosen = next(p for p in picked if p is not OMIT)
            return self._slot(chosen)
        schema = self._resolve(schema)
        options = [self._resolve(s) for s in schema.get("anyOf", [])]
        concrete = [s for s in options if s.get("type") != "null"]
        if concrete:
            schema = concrete[0]
        if "enum" in schema:  # every value of an enum gets its variant, optional or not
            values: list[Any] = schema["enum"]
            self._width = max(self._width, len(values))
            return values[i % len(values)]
        if not required:
            return OMIT
        return self._from_schema(name, schema, i)

    def _from_schema(self, name: str, schema: dict[str, Any], i: int) -> Any:
        kind = schema.get("type")
        if kind == "object":
            return self.object(schema, i)
        if kind == "array":
            item = self._resolve(schema.get("items", {}))
            count = max(int(schema.get("minItems", 1)), 1)
            return [self.value(name, item, i, required=True) for _ in range(count)]
        if kind == "boolean":
            return i % 2 == 0
        if kind in ("integer", "number"):
            return schema.get("default", schema.get("minimum", 1))
        if "default" in schema:
            return schema["default"]
        return _string(schema)

    def object(self, schema: dict[str, Any], i: int) -> dict[str, Any]:
        """An object with every required property and the optional ones the world fills."""
        schema = self._resolve(schema)
        required = set(schema.get("required", []))
        out: dict[str, Any] = {}
        for prop, sub in schema.get("properties", {}).items():
            chosen = self.value(prop, sub, i, required=prop in required)
            if chosen is not OMIT:
                out[prop] = chosen
        return out

    def calls(self, method: str, path: str, op: dict[str, Any]) -> Iterator[Call]:
        """The variants of one operation, built one at a time (each just before it is sent,
        so TOTP codes are fresh and ids created by the previous variant are known)."""
        seen: set[str] = set()
        self._width = 1
        count = 1
        i = 0
        while i < count:
            call = self._call(method, path, op, i)
            if i == 0:
                count = min(MAX_VARIANTS, self._width)
            i += 1
            if call.key() in seen:
                continue
            seen.add(call.key())
            yield call

    def _call(self, method: str, path: str, op: dict[str, Any], i: int) -> Call:
        self._totp = False
        url = path
        call = Call(method, path, url)
        for param in op.get("parameters", []):
            value = self.value(
                param["name"], param.get("schema", {}), i, required=param.get("required", False)
            )
            if value is OMIT:
                continue
            if param["in"] == "path":
                url = url.replace("{" + param["name"] + "}", str(value))
            elif param["in"] == "query":
                call.params[param["name"]] = value
            elif param["in"] == "header":
                call.headers[param["name"]] = str(value)
        call.url = url
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            call.body = self.object(content["application/json"]["schema"], i)
        elif method == "POST" and path in ("/api/webhooks/rail", "/api/processor/events"):
            # Signed feeds read the raw body (no schema): forged deliveries, variant by variant.
            deliveries = self._world.feed_deliveries(path)
            self._width = max(self._width, len(deliveries))
            raw, signature = deliveries[i % len(deliveries)]
            call.raw, call.feed = raw, True
            call.headers |= {"Content-Type": "application/json"} | signature
        call.uses_totp = self._totp
        call.headers = self._world.attacker.auth | call.headers
        return call


def _string(schema: dict[str, Any]) -> str:
    """A string that satisfies the schema's format, pattern and length."""
    fmt, pattern = schema.get("format"), schema.get("pattern")
    if fmt == "uuid":
        return str(uuid.uuid4())
    if fmt == "date-time":
        return utcnow().isoformat()
    if fmt == "email":
        return f"mallory-{uuid.uuid4().hex[:8]}@example.com"
    by_pattern = {
        r"^\d{6}$": "000000",
        r"^\d{4}$": "4242",
        r"^\d{12}$": "000000000000",
        r"^[A-Za-z]{3}$": "EUR",
    }
    if pattern in by_pattern:
        return by_pattern[pattern]
    return "x" * max(int(schema.get("minLength", 1)), 1)


def _phase(operation: tuple[str, str, dict[str, Any]]) -> int:
    """Order of the sweep: create things first so later calls can name them; destructive
    calls last; logout (which ends the attacker's session) at the very end, after which the
    attacker logs in again (`World.keep_session`)."""
    method, path, _ = operation
    if path == "/api/auth/logout":
        return 9
    if path.startswith("/api/auth"):
        return 8
    if method == "DELETE":
        return 7 if path == "/api/accounts/{account_id}" else 6
    if path.endswith("/cancel"):
        return 5  # after approve, so the attacker's approvals are tried first
    if method == "GET":
        return 2
    if "{" in path and not path.endswith("/link"):
        return 3  # actions on existing things: approve, retry, confirm, categorize, rename
    return 1  # creators: accounts, methods, payments, memos, links; and the feeds


# --- the books -------------------------------------------------------------------------------

_POSTINGS = text(
    "SELECT p.id, p.entry_id, p.account_id, p.amount, p.currency, a.kind AS account_kind, "
    "a.owner_user_id AS owner, e.kind AS entry_kind, e.idempotency_key AS entry_key "
    "FROM postings p JOIN ledger_accounts a ON a.id = p.account_id "
    "JOIN journal_entries e ON e.id = p.entry_id ORDER BY p.id"
)
_ACCOUNTS = text(
    "SELECT id, owner_user_id AS owner, currency, posted, held FROM ledger_accounts "
    "WHERE kind = 'customer' AND owner_user_id IN (:a, :v)"
)
_MOVING_MEMOS = text(
    "SELECT id, journal_entry_id, hold_id FROM transactions "
    "WHERE status = 'memo' AND (journal_entry_id IS NOT NULL OR hold_id IS NOT NULL)"
)


@dataclass
class Books:
    """The baseline after ops funded both customers, and the checks against it."""

    world: World
    baseline: set[int]
    start: Balances
    verified: set[uuid.UUID] = field(default_factory=set)
    captures: set[uuid.UUID] = field(default_factory=set)

    @classmethod
    async def open(cls, engine: AsyncEngine, world: World) -> Books:
        """Take the baseline."""
        async with _snapshot(engine) as conn:
            postings = {int(r.id) for r in (await conn.execute(_POSTINGS)).all()}
            balances = await Balances.read(conn, world)
        return cls(world, postings, balances)

    async def check(
        self, engine: AsyncEngine, rail: httpx.AsyncClient, call: str, *, final: bool = False
    ) -> None:
        """Every invariant, from one consistent snapshot of the books."""
        world = self.world
        async with _snapshot(engine) as conn:
            rows = [r for r in (await conn.execute(_POSTINGS)).all() if r.id not in self.baseline]
            now = await Balances.read(conn, world)
            attackers, victims = now.accounts(world.attacker_id), now.accounts(world.victim_id)
            moving_memos = (await conn.execute(_MOVING_MEMOS)).all()
            entries: dict[uuid.UUID, list[Any]] = defaultdict(list)
            for row in rows:
                entries[row.entry_id].append(row)
            credited: dict[str, int] = defaultdict(int)
            for entry_id, legs in entries.items():
                for leg in legs:
                    if leg.account_id in victims:
                        credited[leg.currency] += int(leg.amount)
                if entry_id in self.verified and not (final and entry_id in self.captures):
                    continue
                await self._entry(conn, rail, entry_id, legs, attackers, victims, call, final)
                self.verified.add(entry_id)
        assert not moving_memos, f"after {call}: memos that moved money: {moving_memos}"
        before, after = self.start.total(world.attacker_id), now.total(world.attacker_id)
        for currency, posted in after.items():
            start = before.get(currency, 0)
            assert posted <= start, (
                f"after {call}: the attacker's {currency} grew from {start} to {posted}"
            )
        before, after = self.start.total(world.victim_id), now.total(world.victim_id)
        for currency in set(before) | set(after):
            start, total = before.get(currency, 0), after.get(currency, 0)
            assert total == start + credited[currency], (
                f"after {call}: the victim's {currency} is {total}, but {start} + transfers the "
                f"attacker asked for = {start + credited[currency]}"
            )
        for account in self.start.accounts(world.victim_id):  # the victim asks for nothing
            assert now.posted[account] >= self.start.posted[account], (
                f"after {call}: the victim's account {account} went down"
            )
            assert now.held[account] <= self.start.held[account], (
                f"after {call}: money of the victim's account {account} was put on hold"
            )

    async def _entry(
        self,
        conn: AsyncConnection,
        rail: httpx.AsyncClient,
        entry_id: uuid.UUID,
        legs: list[Any],
        attackers: set[uuid.UUID],
        victims: set[uuid.UUID],
        call: str,
        final: bool,
    ) -> None:
        kind, key = legs[0].entry_kind, legs[0].entry_key
        where = f"after {call}: entry {entry_id} ({kind}, {key})"
        assert kind in ALLOWED_ENTRY_KINDS, f"{where} is no entry a customer may cause"
        mine: dict[str, int] = defaultdict(int)
        for leg in legs:
            if leg.account_id in attackers:
                mine[leg.currency] += int(leg.amount)
        assert all(delta <= 0 for delta in mine.values()), f"{where} gives the attacker {mine}"
        for leg in legs:
            if leg.account_id in victims:
                await self._asked_for_by_attacker(conn, leg, legs, attackers, where)
            elif leg.account_kind == "suspense":
                raise AssertionError(f"{where} parks money in suspense")
            elif leg.account_kind == "fees":
                assert kind in MICRO_DEPOSIT_KINDS, f"{where} moves the bank's fees"
            elif leg.account_kind == "external_settlement":
                if kind == "hold_capture":
                    await self._settled_at_rail(conn, rail, entry_id, leg, where, final)
                else:
                    assert kind in MICRO_DEPOSIT_KINDS, (
                        f"{where} moves money across the bank's edge"
                    )
                    await self._micro_deposit(conn, rail, leg, where)
            else:
                assert leg.account_kind == "customer", f"{where}: leg on {leg.account_kind}"
                assert leg.account_id in attackers, f"{where} touches a third customer"

    async def _asked_for_by_attacker(
        self,
        conn: AsyncConnection,
        leg: Any,
        legs: list[Any],
        attackers: set[uuid.UUID],
        where: str,
    ) -> None:
        """A victim leg: a credit of a transfer the attacker asked for, from its own account."""
        assert leg.amount > 0, f"{where} debits the victim's account {leg.account_id}"
        assert leg.entry_kind == "transfer", f"{where} credits the victim outside a transfer"
        payment_id = str(leg.entry_key).removeprefix("transfer:")
        payment = (
            await conn.execute(
                text(
                    "SELECT user_id, kind, from_account_id, to_account_id, amount, currency "
                    "FROM payments WHERE id = :id"
                ),
                {"id": uuid.UUID(payment_id)},
            )
        ).one_or_none()
        assert payment is not None, f"{where}: no payment {payment_id}"
        assert payment.user_id == self.world.attacker_id, f"{where}: not the attacker's payment"
        assert payment.kind == "internal_transfer", f"{where}: payment {payment.kind}"
        assert payment.from_account_id in attackers, f"{where}: paid from {payment.from_account_id}"
        assert (payment.to_account_id, payment.amount) == (leg.account_id, leg.amount), where
        debits = [
            x for x in legs if x.account_id == payment.from_account_id and x.amount == -leg.amount
        ]
        assert debits, f"{where}: no debit of the attacker's account beside the victim's credit"

    async def _settled_at_rail(
        self,
        conn: AsyncConnection,
        rail: httpx.AsyncClient,
        entry_id: uuid.UUID,
        leg: Any,
        where: str,
        final: bool,
    ) -> None:
        """Money out to the rail: the capture of an external payment's hold, settled there."""
        self.captures.add(entry_id)
        hold = (
            await conn.execute(
                text(
                    "SELECT idempotency_key, captured_amount, currency FROM holds "
                    "WHERE capture_entry_id = :entry"
                ),
                {"entry": entry_id},
            )
        ).one_or_none()
        assert hold is not None, f"{where}: no hold was captured by this entry"
        assert hold.captured_amount == leg.amount, f"{where}: captured {hold.captured_amount}"
        prefix, _, rest = str(hold.idempotency_key).partition(":")
        payment_id = rest.removesuffix(":hold")
        assert prefix == "payment", f"{where}: hold {hold.idempotency_key} is no payment's"
        payment = (
            await conn.execute(
                text(
                    "SELECT user_id, kind, status, amount, currency, rail_payment_id "
                    "FROM payments WHERE id = :id"
                ),
                {"id": uuid.UUID(payment_id)},
            )
        ).one_or_none()
        assert payment is not None, f"{where}: no payment {payment_id}"
        assert payment.kind == "external", f"{where}: a {payment.kind} payment left the bank"
        assert (payment.amount, payment.currency) == (leg.amount, leg.currency), where
        seen = await rail_payment(rail, payment_id)
        assert seen is not None, f"{where}: the rail never heard of payment {payment_id}"
        assert seen["status"] == "settled", f"{where}: the rail says {seen['status']}"
        assert (seen["amount"], seen["currency"]) == (leg.amount, leg.currency), (where, seen)
        if final:
            assert payment.status == "completed", f"{where}: payment {payment.status}"
            assert payment.rail_payment_id == seen["rail_payment_id"], (where, seen)

    async def _micro_deposit(
        self, conn: AsyncConnection, rail: httpx.AsyncClient, leg: Any, where: str
    ) -> None:
        """The bank's micro-deposit to an external account being linked (or its return)."""
        _, link_id, n, *returned = str(leg.entry_key).split(":")
        link = (
            await conn.execute(
                text("SELECT iban FROM linked_accounts WHERE id = :id"), {"id": uuid.UUID(link_id)}
            )
        ).one_or_none()
        assert link is not None, f"{where}: no linked account {link_id}"
        seen = await rail_payment(rail, f"microdeposit:{link_id}:{n}")
        assert seen is not None, f"{where}: the rail never carried this micro-deposit"
        assert seen["amount"] == abs(leg.amount), (where, seen)
        assert seen["creditor_iban"].replace(" ", "") == link.iban.replace(" ", ""), (where, seen)
        if returned:
            assert seen["status"] != "settled", f"{where}: returned, but the rail settled it"


@asynccontextmanager
async def _snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A REPEATABLE READ connection: one consistent view of the books."""
    async with engine.connect() as conn:
        snapshot = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with snapshot.begin():
            yield snapshot


@dataclass(frozen=True)
class Balances:
    """Both customers' accounts (including any the attacker opened) at one point in time."""

    owner: dict[uuid.UUID, uuid.UUID]
    currency: dict[uuid.UUID, str]
    posted: dict[uuid.UUID, int]
    held: dict[uuid.UUID, int]

    @classmethod
    async def read(cls, conn: AsyncConnection, world: World) -> Balances:
        """Read them in the snapshot of `conn`."""
        rows = (await conn.execute(_ACCOUNTS, {"a": world.attacker_id, "v": world.victim_id})).all()
        return cls(
            owner={r.id: r.owner for r in rows},
            currency={r.id: str(r.currency) for r in rows},
            posted={r.id: int(r.posted) for r in rows},
            held={r.id: int(r.held) for r in rows},
        )

    def accounts(self, owner: uuid.UUID) -> set[uuid.UUID]:
        """The customer's account ids."""
        return {account for account, who in self.owner.items() if who == owner}

    def total(self, owner: uuid.UUID) -> dict[str, int]:
        """The customer's posted total per currency."""
        out: dict[str, int] = defaultdict(int)
        for account in self.accounts(owner):
            out[self.currency[account]] += self.posted[account]
        return dict(out)


# --- setup and teardown ----------------------------------------------------------------------


async def _account(sessions: SessionFactory, owner: uuid.UUID, currency: str, name: str) -> Account:
    opened = await open_account(sessions, owner, currency, name)
    return Account(str(opened.account_id), opened.number, currency)


async def _status(sessions: SessionFactory, payment_id: str) -> str:
    async with sessions() as session:
        return str(
            await session.scalar(
                text("SELECT status FROM payments WHERE id = :id"), {"id": uuid.UUID(payment_id)}
            )
        )


async def _wait_for(sessions: SessionFactory, payment_id: str, *wanted: str) -> None:
    async def probe() -> bool | None:
        return True if await _status(sessions, payment_id) in wanted else None

    await eventually(probe, max_wait=15, interval=0.05)


async def _post(
    api: httpx.AsyncClient, path: str, auth: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    answer = await api.post(path, headers=auth | {"Idempotency-Key": str(uuid.uuid4())}, json=body)
    assert answer.status_code in (200, 201, 202), answer.text
    result: dict[str, Any] = answer.json()
    return result


async def _world(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory, outbox: MemoryEmailBackend
) -> World:
    """Two funded customers; the victim has a beneficiary, a completed transfer, a payment
    awaiting its approval, a link and a memo (things the attacker will try to touch)."""
    attacker = await register_customer(api, outbox, "mallory@example.com")
    profile = (await api.get("/api/auth/profile", headers=attacker.auth)).json()
    attacker_id = uuid.UUID(profile["id"])
    main = (await api.get("/api/accounts", headers=attacker.auth)).json()["items"][0]
    victim_id = await new_user(sessions, "victor")
    victim_token = (await SessionService(services).issue_session(victim_id)).access_token
    world = World(
        attacker=attacker,
        attacker_id=attacker_id,
        victim_id=victim_id,
        victim_auth={"Authorization": f"Bearer {victim_token}"},
        a_main=Account(str(main["id"]), str(main["number"]), "EUR"),
        a_spare=await _account(sessions, attacker_id, "EUR", "Spare"),
        a_usd=await _account(sessions, attacker_id, "USD", "Dollars"),
        v_main=await _account(sessions, victim_id, "EUR", "Main"),
        v_spare=await _account(sessions, victim_id, "EUR", "Savings"),
        services=services,
    )
    for account, minor in (
        (world.a_main, 2_000_000),
        (world.a_spare, 1_000),
        (world.a_usd, 10_000),
        (world.v_main, 1_000_000),
    ):
        await fund(sessions, account.id, minor, account.currency)
    v, v_auth = world.v_main, world.victim_auth
    method = await _post(
        api, "/api/payments/methods", v_auth, {"name": "Landlord", "iban": GOOD_IBAN}
    )
    own = await _post(
        api,
        "/api/payments/transfer",
        v_auth,
        {
            "from_account_id": v.id,
            "to_account_id": world.v_spare.id,
            "amount": "1.00",
            "currency": "EUR",
        },
    )
    pending = await _post(
        api,
        "/api/payments/external",
        v_auth,
        {
            "from_account_id": v.id,
            "payment_method_id": method["id"],
            "amount": "1500.00",
            "currency": "EUR",
        },
    )
    await _post(
        api, f"/api/accounts/{v.id}/link", v_auth, {"iban": GOOD_IBAN, "holder_name": "Victor"}
    )
    await _post(
        api,
        "/api/transactions",
        v_auth,
        {"account_id": v.id, "amount": "3.50", "currency": "EUR", "merchant": "Bakery"},
    )
    await _wait_for(sessions, own["id"], "completed")
    await _wait_for(sessions, pending["id"], "pending_approval")
    return world


async def _attacker_setup(api: httpx.AsyncClient, sessions: SessionFactory, world: World) -> None:
    """The attacker's own beneficiary and a large payment awaiting its approval."""
    auth = world.attacker.auth
    method = await _post(api, "/api/payments/methods", auth, {"name": "Me", "iban": GOOD_IBAN})
    pending = await _post(
        api,
        "/api/payments/external",
        auth,
        {
            "from_account_id": world.a_main.id,
            "payment_method_id": method["id"],
            "amount": "1500.00",
            "currency": "EUR",
        },
    )
    await _wait_for(sessions, pending["id"], "pending_approval")


async def _settle(api: httpx.AsyncClient, sessions: SessionFactory, world: World) -> None:
    """Let every payment reach a final status: approvals nobody gave are cancelled by their
    owners (the attacker's by the attacker, the victim's by the victim), the rest finish."""

    async def open_payments() -> list[Any]:
        async with sessions() as session:
            rows = await session.execute(
                text("SELECT id, user_id, status FROM payments WHERE NOT status = ANY(:final)"),
                {"final": list(FINAL)},
            )
            return list(rows.all())

    for row in await open_payments():
        if row.status in ("pending_approval", "requires_action", "scheduled"):
            auth = world.attacker.auth if row.user_id == world.attacker_id else world.victim_auth
            answer = await api.post(f"/api/payments/{row.id}/cancel", headers=auth)
            assert answer.status_code in (200, 409), answer.text

    async def all_final() -> bool | None:
        return True if not await open_payments() else None

    await eventually(all_final, max_wait=SETTLE_SECONDS, interval=0.1)


# --- the tests -------------------------------------------------------------------------------


def test_the_openapi_lists_every_route_the_app_serves() -> None:
    """The sweep walks the OpenAPI, so a route left out of it would escape: there is none."""
    app = create_app()
    spec = app.openapi()
    listed = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    served = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert served <= listed, f"served but not in the OpenAPI: {sorted(served - listed)}"
    assert listed, "the OpenAPI lists no operation"


async def test_no_route_lets_a_customer_create_money_or_pay_out_without_the_rail(
    api: httpx.AsyncClient,
    rail: httpx.AsyncClient,
    services: Services,
    sessions: SessionFactory,
    engine: AsyncEngine,
    outbox: MemoryEmailBackend,
) -> None:
    world = await _world(api, services, sessions, outbox)
    books = await Books.open(engine, world)
    await _attacker_setup(api, sessions, world)
    await books.check(engine, rail, "the attacker's setup")
    spec = create_app(services.settings, services).openapi()
    operations = [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]
    generator = Generator(spec, world)
    called: set[tuple[str, str]] = set()
    problems: list[str] = []
    calls = 0
    for method, path, op in sorted(operations, key=_phase):
        await world.refresh(sessions)
        for call in generator.calls(method, path, op):
            response = await api.request(
                method,
                call.url,
                params=call.params,
                headers=call.headers,
                json=call.body if call.raw is None and call.body is not None else None,
                content=call.raw,
            )
            calls += 1
            called.add((method, path))
            if response.status_code >= 500:
                problems.append(f"server error: {call.describe(response)}")
            if call.feed and response.status_code != 401:
                problems.append(f"forged feed delivery not refused: {call.describe(response)}")
            if call.uses_totp:
                await world.sync_totp(sessions)
            await books.check(engine, rail, call.describe(response))
            if path.startswith("/api/auth"):
                await world.keep_session(api)

    assert called == {(m, p) for m, p, _ in operations}, "the sweep skipped operations"
    assert calls >= 2 * len(operations), f"only {calls} calls for {len(operations)} operations"
    await _settle(api, sessions, world)
    await books.check(engine, rail, "the workflows finished", final=True)
    await assert_ledger_ok(sessions)
    assert not problems, "\n".join(problems)
