"""`vortex dev --demo` data: idempotent seeding, a sound ledger afterwards, and credentials that
really log in through the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pyotp
from sqlalchemy import text

from cli.demo import seed_demo
from cli.demo_schedule import DEMO_MONTHS, demo_schedule
from core.db import SessionFactory
from core.settings import Settings
from tests.ledger_support import assert_ledger_ok, snapshot

_DEMO_ROWS = {
    "users": "SELECT id, email, status, mfa_enabled, password_hash, mfa_secret_encrypted, "
    "totp_last_step FROM users",
    "recovery": "SELECT code_digest, used_at FROM recovery_codes ORDER BY code_digest",
    "transactions": "SELECT id, account_id, kind, amount, currency, direction, status, "
    "counterparty, description, merchant, category, external_id, occurred_at "
    "FROM transactions ORDER BY occurred_at, id",
}


async def _state(sessions: SessionFactory) -> dict[str, Any]:
    async with sessions() as session:
        rows = {
            name: [tuple(r) for r in (await session.execute(text(sql))).all()]
            for name, sql in _DEMO_ROWS.items()
        }
    return rows | await snapshot(sessions)


def test_schedule_is_deterministic_and_in_the_past() -> None:
    anchor = datetime(2024, 6, 18, 9, 30, tzinfo=UTC)

    events = demo_schedule(anchor)

    assert events == demo_schedule(anchor)
    assert len({e.key for e in events}) == len(events)
    assert all(e.at < anchor for e in events)
    assert events[0].at == datetime(2024, 2, 1, tzinfo=UTC)  # DEMO_MONTHS full months before
    months = {e.at.strftime("%Y-%m") for e in events}
    assert len(months) == DEMO_MONTHS + 1
    # A later anchor only adds the newer events; the older ones keep their keys and amounts.
    later = demo_schedule(datetime(2024, 6, 28, tzinfo=UTC))
    assert {e.key: e for e in events if e.at.month > 2}.items() <= {e.key: e for e in later}.items()


async def test_seed_twice_is_the_same_data_and_the_ledger_holds(
    api: httpx.AsyncClient, settings: Settings, sessions: SessionFactory
) -> None:
    first = await seed_demo(settings, api, sessions=sessions)
    before = await _state(sessions)
    second = await seed_demo(settings, api, sessions=sessions)
    after = await _state(sessions)
    async with sessions() as session:
        new_audit = (
            await session.execute(
                text("SELECT action FROM audit_log WHERE id > :last ORDER BY id"),
                {"last": max(before["audit"])[0]},
            )
        ).scalars()
        redelivered = list(new_audit)
    # Reseeding redelivers the card history: the feed answers (and audits) duplicates only.
    assert redelivered
    assert set(redelivered) == {"processor.duplicate"}
    after["audit"] = before["audit"]

    assert second == first
    assert after == before
    await assert_ledger_ok(sessions)
    assert len(first.accounts) == 3
    assert first.transactions >= 4 * 30
    async with sessions() as session:
        categories: dict[str, int] = dict(
            (
                await session.execute(
                    text("SELECT category, count(*) FROM transactions GROUP BY category")
                )
            )
            .tuples()
            .all()
        )
        balances = (
            await session.execute(
                text("SELECT currency, posted FROM ledger_accounts WHERE kind = 'customer'")
            )
        ).all()
        future = (
            await session.execute(
                text("SELECT count(*) FROM transactions WHERE occurred_at > now()")
            )
        ).scalar_one()
    # The rule-based categorizer recognized every demo merchant and description.
    assert "other" not in categories, categories
    for expected in (
        "salary",
        "income",
        "groceries",
        "dining",
        "transport",
        "utilities",
        "entertainment",
        "shopping",
        "health",
        "cash",
        "transfer",
    ):
        assert categories.get(expected, 0) > 0, (expected, categories)
    assert all(posted > 0 for _, posted in balances)
    assert future == 0
    assert "demo@vortexcore.dev" in first.describe()


async def test_demo_credentials_log_in_and_see_the_history(
    api: httpx.AsyncClient, settings: Settings, sessions: SessionFactory
) -> None:
    creds = await seed_demo(settings, api, sessions=sessions)

    login = await api.post(
        "/api/auth/login",
        json={
            "email": creds.email,
            "password": creds.password,
            "totp_code": pyotp.TOTP(creds.totp_secret).now(),
        },
    )
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    recovery = await api.post(
        "/api/auth/login",
        json={
            "email": creds.email,
            "password": creds.password,
            "recovery_code": creds.recovery_codes[0],
        },
    )
    assert recovery.status_code == 200, recovery.text
    await seed_demo(settings, api, sessions=sessions)  # re-arms the used recovery code
    again = await api.post(
        "/api/auth/login",
        json={
            "email": creds.email,
            "password": creds.password,
            "recovery_code": creds.recovery_codes[0],
        },
    )
    assert again.status_code == 200, again.text

    accounts = (await api.get("/api/accounts", headers=auth)).json()["items"]
    page = (await api.get("/api/transactions", headers=auth, params={"limit": 50})).json()
    analytics = (await api.get("/api/transactions/analytics", headers=auth)).json()
    salary = (
        await api.get("/api/transactions/search", headers=auth, params={"q": "salary"})
    ).json()

    assert sorted(a["currency"] for a in accounts) == ["EUR", "EUR", "USD"]
    assert len(page["items"]) == 50
    assert page["next_cursor"] is not None
    assert {t["currency"] for t in analytics["totals"]} == {"EUR", "USD"}
    # The current month may still be empty on its first morning.
    assert len({m["month"] for m in analytics["by_month"]}) >= DEMO_MONTHS
    assert salary["items"]
    assert all(t["category"] == "salary" for t in salary["items"])
