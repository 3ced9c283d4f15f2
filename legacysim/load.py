"""A load generator for the monolith: customers logging in, booking money in and out, opening
accounts and signing up, through its HTTP API, until told to stop. Refusals of a frozen domain
(423) are expected once a domain is cut over and are only counted."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class LegacyLoad:
    """Writes to the monolith through `http`; knows every user's password (a simulator)."""

    http: httpx.AsyncClient
    credentials: list[tuple[str, str]]
    rng: random.Random = field(default_factory=lambda: random.Random(5))  # noqa: S311
    outcomes: Counter[str] = field(default_factory=Counter)
    _tokens: dict[str, str] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event, pause: float = 0.01) -> None:
        """Act until `stop` is set."""
        n = 0
        while not stop.is_set():
            try:
                await self.step(n)
            except httpx.TransportError:
                self.outcomes["transport_error"] += 1
            n += 1
            await asyncio.sleep(pause)

    async def step(self, n: int) -> None:
        """One customer action, picked at random (signups every 15th step)."""
        if n % 15 == 7:
            await self._signup(n)
            return
        email, password = self.rng.choice(self.credentials)
        token = await self._token(email, password)
        if token is None:
            return
        headers = {"Authorization": f"Token {token}"}
        accounts = (await self.http.get("/api/accounts", headers=headers)).json()["accounts"]
        if not accounts or self.rng.random() < 0.08:
            answer = await self.http.post(
                "/api/accounts", json={"currency": "EUR", "name": "Pocket"}, headers=headers
            )
            self.outcomes[f"open_account:{answer.status_code}"] += 1
            return
        account = self.rng.choice(accounts)
        amount = self.rng.choice(["25.00", "7.45", "-3.20", "-12.99", "140.10"])
        answer = await self.http.post(
            "/api/transactions",
            json={"account_id": account["id"], "amount": amount, "description": "load"},
            headers=headers,
        )
        self.outcomes[f"transaction:{answer.status_code}"] += 1

    async def _token(self, email: str, password: str) -> str | None:
        if email not in self._tokens:
            answer = await self.http.post(
                "/api/auth/login", json={"username": email, "password": password}
            )
            if answer.status_code != 200:
                self.outcomes[f"login:{answer.status_code}"] += 1
                return None
            self._tokens[email] = answer.json()["token"]
        return self._tokens[email]

    async def _signup(self, n: int) -> None:
        email, password = f"load{n}.{self.rng.randrange(10**6)}@legacy.example", f"load-pw-{n}"
        answer = await self.http.post(
            "/api/auth/signup", json={"email": email, "password": password, "full_name": "Lo Ad"}
        )
        self.outcomes[f"signup:{answer.status_code}"] += 1
        if answer.status_code == 201:
            self.credentials.append((email, password))
