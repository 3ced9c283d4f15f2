"""The transactions export: CSV and JSON through the API, and 100k rows streamed in bounded
memory (the process's resident size measured while it streams)."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import timedelta

import httpx

from activities.analytics.export import render
from api.services import Services
from models.base import utcnow
from tests import ledger_support
from tests.analytics_support import seed_transactions
from tests.notifications_support import person


def _rss_bytes() -> int:
    """This process's resident set size now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_export_as_csv_and_json_holds_the_callers_rows_only(
    api: httpx.AsyncClient, services: Services
) -> None:
    ada = await person(services, "ada")
    eur = await ledger_support.funded_account(services.sessions, ada.id, 10_000, "EUR")
    now = utcnow()
    await seed_transactions(
        services.sessions, ada.id, eur, n=120, currency="EUR", until=now, days=30
    )
    bob = await person(services, "bob")
    other = await ledger_support.funded_account(services.sessions, bob.id, 10_000, "EUR")
    await seed_transactions(
        services.sessions, bob.id, other, n=50, currency="EUR", until=now, days=30
    )
    params = {"from": str((now - timedelta(days=40)).date()), "to": str(now.date())}

    answer = await api.get("/api/analytics/export", params=params, headers=ada.headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 121  # the seeded rows and the funding credit
    assert [r["occurred_at"] for r in rows] == sorted(r["occurred_at"] for r in rows)

    as_json = await api.get(
        "/api/analytics/export", params={**params, "format": "json"}, headers=ada.headers
    )
    items = json.loads(as_json.text)
    assert [i["id"] for i in items] == [r["id"] for r in rows]
    assert {i["amount_minor"] for i in items} == {int(r["amount_minor"]) for r in rows}


async def test_a_100k_row_export_streams_in_bounded_memory(services: Services) -> None:
    ada = await person(services, "ada")
    eur = await ledger_support.funded_account(services.sessions, ada.id, 10_000, "EUR")
    now = utcnow()
    await seed_transactions(
        services.sessions, ada.id, eur, n=100_000, currency="EUR", until=now, days=365
    )
    start, end = now - timedelta(days=400), now + timedelta(seconds=1)

    total_bytes, lines, rss = 0, 0, []
    async for chunk in render(services.read_pool, ada.id, start, end, "csv"):
        total_bytes += len(chunk)
        lines += chunk.count(b"\n")
        rss.append(_rss_bytes())

    assert lines == 100_002  # the header, 100k seeded rows and the funding credit
    # The whole CSV is about 18 MB, and holding its rows as records and dicts would take well
    # over 100 MB; the streaming path holds a batch or two (a few MB, allocator slack included),
    # so the process grows by less than half the export's own size.
    assert total_bytes > 15_000_000
    growth = max(rss) - rss[1]
    assert growth < total_bytes / 2, f"RSS grew {growth} bytes for a {total_bytes}-byte export"
