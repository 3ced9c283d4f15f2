"""The sweep's request side: a world of both customers' ids, and valid requests generated from
the OpenAPI for every operation (see test_no_money_from_nowhere).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from itertools import zip_longest
from typing import Any, Final

import httpx
from sqlalchemy import text

from activities.linking import micro_deposit_amounts
from api.auth.sessions import SessionService
from api.services import Services
from core.db import SessionFactory
from core.signatures import PROCESSOR_SIGNATURE_HEADER, SIGNATURE_HEADER, sign
from models.base import utcnow
from models.ledger.tables import Direction
from models.money import format_amount
from processorsim import processor_event
from tests.flows import Customer
from tests.payment_support import GOOD_IBAN, wrong_totp

STEP_SECONDS: Final = 30  # TOTP step
MAX_VARIANTS: Final = 6


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
        return schema_string(schema)

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


def schema_string(schema: dict[str, Any]) -> str:
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
