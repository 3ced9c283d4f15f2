"""Analytics routes: figures from the rollup equal a direct SQL computation over the same
transactions; the rollup follows inserts, status changes and recategorizations; bad input is
a problem and changes nothing; client events are checked, capped, limited and stored once."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from activities.analytics.periods import Period, add_months, month_start, period_span, previous_span
from activities.ledger.transactions import recategorize_transaction
from api.services import Services
from core.db import SessionFactory, transaction
from core.settings import Settings
from models.analytics.tables import AnalyticsEvent
from models.base import utcnow
from models.ledger.payloads import RecategorizeInput
from tests import ledger_support
from tests.analytics_support import direct_sums, rollup_and_rebuilt, seed_transactions
from tests.notifications_support import Person, person


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Per-test queues, and small event caps so the size and rate limits are reachable."""
    suffix = uuid.uuid4().hex[:8]
    return base_settings.model_copy(
        update={
            "task_queue": f"main-{suffix}",
            "external_task_queue": f"external-{suffix}",
            "analytics_events_per_minute": 8,
            "analytics_events_max_body_bytes": 4096,
        }
    )


async def _customer(services: Services, n: int = 400) -> tuple[Person, uuid.UUID, uuid.UUID]:
    """A customer with a EUR and a USD account and `n` seeded transactions on each; another
    customer's rows beside them must never count."""
    ada = await person(services, "ada")
    eur = await ledger_support.funded_account(services.sessions, ada.id, 500_000, "EUR")
    usd = await ledger_support.funded_account(services.sessions, ada.id, 90_000, "USD")
    now = utcnow()
    await seed_transactions(
        services.sessions, ada.id, eur, n=n, currency="EUR", until=now, days=240
    )
    await seed_transactions(
        services.sessions, ada.id, usd, n=n // 2, currency="USD", until=now, days=240
    )
    bob = await ledger_support.new_user(services.sessions, "bob")
    bob_eur = await ledger_support.funded_account(services.sessions, bob, 1000, "EUR")
    await seed_transactions(
        services.sessions, bob, bob_eur, n=n, currency="EUR", until=now, days=240
    )
    return ada, eur, usd


def _by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {i[key]: i for i in items}


async def test_dashboard_categories_spending_and_trends_equal_direct_sql(
    api: httpx.AsyncClient, services: Services
) -> None:
    ada, _, _ = await _customer(services)
    today = utcnow().date()
    this_month = month_start(today)
    direct = await direct_sums(services.sessions, ada.id, this_month, today)

    dash = (await api.get("/api/analytics/dashboard", headers=ada.headers)).json()
    currencies = _by(dash["currencies"], "currency")
    assert set(currencies) == {"EUR", "USD"}
    for cur, figures in currencies.items():
        mine = {cat: v for (c, cat), v in direct.items() if c == cur}
        mtd = figures["month_to_date"]
        assert mtd["money_in"]["amount_minor"] == sum(v[0] for v in mine.values())
        assert mtd["money_out"]["amount_minor"] == sum(v[1] for v in mine.values())
        spending = sum(v[1] for cat, v in mine.items() if cat != "transfer")
        income = sum(v[0] for cat, v in mine.items() if cat != "transfer")
        assert mtd["spending"]["amount_minor"] == spending
        expected_rate = round((income - spending) / income, 4) if income else None
        assert figures["savings_rate"] == expected_rate
        top = sorted(
            ((v[1], cat) for cat, v in mine.items() if cat != "transfer"),
            key=lambda x: (-x[0], x[1]),
        )[:5]
        assert [c["category"] for c in figures["top_categories"]] == [cat for _, cat in top]
        assert [c["spending"]["amount_minor"] for c in figures["top_categories"]] == [
            amount for amount, _ in top
        ]
        assert len(figures["recent_months"]) == 6
    assert currencies["EUR"]["accounts"] == 1

    first, last = today - timedelta(days=100), today - timedelta(days=10)
    got = (
        await api.get(
            "/api/analytics/categories",
            params={"from": str(first), "to": str(last)},
            headers=ada.headers,
        )
    ).json()
    direct = await direct_sums(services.sessions, ada.id, first, last)
    seen = {
        (c["currency"], cat["category"]): (
            cat["income"]["amount_minor"],
            cat["spending"]["amount_minor"],
            cat["count"],
        )
        for c in got["currencies"]
        for cat in c["categories"]
    }
    assert seen == direct

    spend = (await api.get("/api/analytics/spending/month", headers=ada.headers)).json()
    whole = period_span(Period.MONTH, today)
    previous = previous_span(Period.MONTH, whole)
    direct_now = await direct_sums(services.sessions, ada.id, whole.first, today)
    direct_prev = await direct_sums(services.sessions, ada.id, previous.first, previous.last)
    eur = _by(spend["currencies"], "currency")["EUR"]
    assert eur["current"]["flows"]["spending"]["amount_minor"] == sum(
        v[1] for (c, cat), v in direct_now.items() if c == "EUR" and cat != "transfer"
    )
    assert eur["previous"]["flows"]["spending"]["amount_minor"] == sum(
        v[1] for (c, cat), v in direct_prev.items() if c == "EUR" and cat != "transfer"
    )

    trends = (
        await api.get(
            "/api/analytics/trends",
            params={"months": 4, "window": 2, "category": "dining"},
            headers=ada.headers,
        )
    ).json()
    series = {s["currency"]: s for s in trends["series"]}
    points = series["EUR"]["points"]
    assert len(points) == 4
    months = [add_months(this_month, -n) for n in range(4, -1, -1)]  # one earlier for the window
    monthly = []
    for m in months:
        end = min(add_months(m, 1) - timedelta(days=1), today)
        monthly.append(
            (await direct_sums(services.sessions, ada.id, m, end)).get(
                ("EUR", "dining"), (0, 0, 0)
            )[1]
        )
    assert [p["spending"]["amount_minor"] for p in points] == monthly[1:]
    assert points[-1]["moving_average"]["amount_minor"] == round((monthly[-1] + monthly[-2]) / 2)


async def test_the_rollup_follows_inserts_postings_and_recategorizations(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    ada, _eur, _ = await _customer(services, n=200)
    kept, rebuilt = await rollup_and_rebuilt(sessions)
    assert kept == rebuilt
    assert kept

    async with sessions() as session:
        row = (
            await session.execute(
                text(
                    "SELECT id FROM transactions WHERE user_id = :u AND status = 'posted' "
                    "AND category = 'groceries' LIMIT 1"
                ),
                {"u": ada.id},
            )
        ).one()
    async with transaction(sessions) as session:
        await recategorize_transaction(
            session,
            RecategorizeInput(transaction_id=row.id, category="health", owner_user_id=ada.id),
        )
    # A pending row posted later, a posted one moved to failed: both move the rollup.
    async with transaction(sessions) as session:
        await session.execute(
            text(
                "UPDATE transactions SET status = CASE status WHEN 'pending' THEN 'posted' "
                "ELSE 'failed' END WHERE user_id = :u AND status IN ('pending', 'posted') "
                "AND description LIKE 'seeded row 4%'"
            ),
            {"u": ada.id},
        )
    kept, rebuilt = await rollup_and_rebuilt(sessions)
    assert kept == rebuilt
    assert any(r[2] == "health" for r in kept)


@pytest.mark.parametrize(
    ("path", "params", "slug"),
    [
        ("/api/analytics/spending/fortnight", {}, "validation-error"),
        ("/api/analytics/trends", {"category": "yachts"}, "invalid-category"),
        ("/api/analytics/trends", {"months": 0}, "validation-error"),
        ("/api/analytics/categories", {"from": "2026-11-30", "to": "2026-11-01"}, "invalid-range"),
        ("/api/analytics/categories", {"from": "2026-11-01"}, "invalid-range"),
        ("/api/analytics/categories", {"from": "2000-01-01", "to": "2026-11-01"}, "invalid-range"),
        ("/api/analytics/categories", {"from": "yesterday", "to": "2026-11-01"}, "invalid-range"),
        ("/api/analytics/categories", {"currency": "XXQ"}, "unknown-currency"),
        ("/api/analytics/export", {}, "invalid-range"),
        (
            "/api/analytics/export",
            {"from": "2026-11-01", "to": "2026-11-02", "format": "xml"},
            "validation-error",
        ),
    ],
)
async def test_bad_analytics_queries_are_problems(
    api: httpx.AsyncClient, services: Services, path: str, params: dict[str, Any], slug: str
) -> None:
    ada = await person(services)
    answer = await api.get(path, params=params, headers=ada.headers)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith(slug)


def _event(name: str = "screen.viewed", **props: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "occurred_at": utcnow().isoformat(),
        "properties": props or {"screen": "dashboard"},
    }


async def _stored(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(AnalyticsEvent)) or 0)


async def test_client_events_are_checked_capped_limited_and_stored_once(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    ada = await person(services)
    first = [_event(), _event("chart.viewed", chart="trends", period="month")]
    answer = await api.post("/api/analytics/events", json={"events": first}, headers=ada.headers)
    assert answer.status_code == 202
    assert answer.json() == {"stored": 2, "duplicates": 0}
    again = await api.post("/api/analytics/events", json={"events": first}, headers=ada.headers)
    assert again.json() == {"stored": 0, "duplicates": 2}

    refused = [
        ({"events": [_event("wallet.drained")]}, 422, "invalid-event"),
        ({"events": [_event(screen="Ada Lovelace's screen")]}, 422, "invalid-event"),
        ({"events": [_event(screen="home", email="ada@example.com")]}, 422, "invalid-event"),
        ({"events": [{**_event(), "occurred_at": "2020-01-01T00:00:00Z"}]}, 422, "invalid-event"),
        ({"events": []}, 422, "validation-error"),
        (
            {
                "events": [
                    _event("button.clicked", button="x" * 60, screen="y" * 60) for _ in range(50)
                ]
            },
            413,
            "body-too-large",
        ),
    ]
    for body, status_code, slug in refused:
        answer = await api.post("/api/analytics/events", json=body, headers=ada.headers)
        assert answer.status_code == status_code, answer.text
        assert answer.json()["type"].endswith(slug)
    assert await _stored(sessions) == 2

    # The budget is 8 a minute: 4 were counted above; 5 more do not fit, so none is stored.
    flood = await api.post(
        "/api/analytics/events", json={"events": [_event() for _ in range(5)]}, headers=ada.headers
    )
    assert flood.status_code == 429
    assert int(flood.headers["Retry-After"]) >= 1
    assert await _stored(sessions) == 2
    with pytest.raises(Exception, match="append-only"):
        async with transaction(sessions) as session:
            await session.execute(text("DELETE FROM analytics_events"))
