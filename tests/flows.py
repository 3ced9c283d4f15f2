"""Reusable end-to-end flows through the real API (registration, login)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp

from activities.ledger import fund_account
from core.db import SessionFactory, transaction
from core.email import MemoryEmailBackend
from models.ledger.payloads import FundAccountInput

STRONG_PASSWORD = "correct-horse-battery-staple-42"


@dataclass
class Customer:
    """A registered, MFA-enabled user and what the test knows about it."""

    email: str
    password: str
    totp_secret: str
    recovery_codes: list[str]
    access_token: str
    refresh_token: str
    registration_id: str
    last_step: int = 0

    @property
    def auth(self) -> dict[str, str]:
        """Authorization header with the current access token."""
        return {"Authorization": f"Bearer {self.access_token}"}

    def fresh_totp(self) -> str:
        """A valid TOTP code for a step newer than any used (the server refuses older steps)."""
        totp = pyotp.TOTP(self.totp_secret)
        now = time.time()
        now_step = int(now) // 30
        # The previous step leaves room for three fresh codes in a row, but in a step's last
        # seconds the server may already be in the next one, where it is two steps old.
        closing = now % 30 >= 27
        step = max(self.last_step + 1, now_step if closing else now_step - 1)
        if step > now_step + 1 and closing:
            time.sleep(30 - now % 30 + 0.05)  # at most 3 s: the next step opens one more code
            return self.fresh_totp()
        assert step <= now_step + 1, "no unused TOTP step left within the +/-1 window"
        self.last_step = step
        return totp.generate_otp(step)


async def wait_for_email(outbox: MemoryEmailBackend, to: str, count: int = 1) -> str:
    """The body of the `count`-th email to an address, waiting for the worker to send it."""
    for _ in range(200):
        mails = [m for m in outbox.outbox if m.to == to]
        if len(mails) >= count:
            return mails[count - 1].body
        await asyncio.sleep(0.05)
    raise AssertionError(f"no email #{count} to {to}")


def code_in(body: str) -> str:
    """The 6-digit verification code in an email body."""
    match = re.search(r"\b(\d{6})\b", body)
    assert match, body
    return match.group(1)


async def start_registration(
    api: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD
) -> str:
    """POST /register; returns the registration id."""
    response = await api.post(
        "/api/auth/register",
        json={"email": email, "password": password, "first_name": "Ada", "last_name": "Lovelace"},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["registration_id"])


async def verify_email(api: httpx.AsyncClient, registration_id: str, code: str) -> httpx.Response:
    """Submit an email code."""
    return await api.post(
        f"/api/auth/registrations/{registration_id}/verify-email", json={"code": code}
    )


async def register_customer(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    email: str = "ada@example.com",
    password: str = STRONG_PASSWORD,
) -> Customer:
    """Register, verify the email, set up and verify MFA: an active customer."""
    registration_id = await start_registration(api, email, password)
    code = code_in(await wait_for_email(outbox, email))
    verified = await verify_email(api, registration_id, code)
    assert verified.status_code == 200, verified.text
    reg_auth = {"Authorization": f"Bearer {verified.json()['registration_token']}"}
    setup = await api.post("/api/auth/mfa/setup", headers=reg_auth)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    customer = Customer(email, password, secret, [], "", "", registration_id)
    done = await api.post(
        "/api/auth/mfa/verify", headers=reg_auth, json={"code": customer.fresh_totp()}
    )
    assert done.status_code == 200, done.text
    body = done.json()
    customer.recovery_codes = body["recovery_codes"]
    customer.access_token, customer.refresh_token = body["access_token"], body["refresh_token"]
    return customer


async def password_step(api: httpx.AsyncClient, customer: Customer) -> str:
    """Log in with the password alone; returns the MFA challenge token it answers."""
    response = await api.post(
        "/api/auth/login", json={"email": customer.email, "password": customer.password}
    )
    assert response.status_code == 401, response.text
    assert response.json()["type"].endswith("/mfa-required")
    return str(response.json()["challenge_token"])


async def answer_challenge(api: httpx.AsyncClient, challenge: str, code: str) -> httpx.Response:
    """The login's second step: the challenge token with a TOTP code."""
    return await api.post("/api/auth/login", json={"challenge_token": challenge, "totp_code": code})


async def fund(sessions: SessionFactory, account_id: str, amount_minor: int, currency: str) -> None:
    """Credit an account from external settlement the way ops would (a real journal entry)."""
    async with transaction(sessions) as session:
        await fund_account(
            session,
            FundAccountInput(
                idempotency_key=f"test-funding-{uuid.uuid4()}",
                account_id=uuid.UUID(account_id),
                amount=amount_minor,
                currency=currency,
                reason="test",
            ),
        )


async def main_account(api: httpx.AsyncClient, who: Customer) -> dict[str, Any]:
    """The customer's first account, as the API lists it."""
    return dict((await api.get("/api/accounts", headers=who.auth)).json()["items"][0])


async def available_minor(api: httpx.AsyncClient, who: Customer, account_id: str) -> int:
    """The account's available balance in minor units, as the API reports it."""
    balance = (await api.get(f"/api/accounts/{account_id}/balance", headers=who.auth)).json()
    return int(balance["available"]["amount_minor"])
