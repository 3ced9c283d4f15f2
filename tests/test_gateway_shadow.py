"""Shadow mode: legacy answers, the new side's answer is compared, differences are recorded
without their values, and writes are never copied to the new side."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text

from core.db import SessionFactory
from core.settings import Settings
from gateway.shadow import Answer, compare
from tests.gateway_support import gateway_env, put_route


async def _rows(sessions: SessionFactory, sql: str) -> list[dict[str, object]]:
    async with sessions() as session:
        return [dict(r._mapping) for r in await session.execute(text(sql))]


async def test_legacy_answers_and_a_difference_is_recorded_without_values(
    settings: Settings, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/api/accounts", "shadow")
    account = uuid.uuid4()
    async with gateway_env(settings) as env:
        env.legacy.extra = {"owner": "Ada Lovelace", "balance": 100, "items": [1, 2]}
        env.new.extra = {"owner": "Ada L.", "balance": 100, "items": [1, 2, 3], "extra": True}
        await env.gateway.routes.reload()
        answer = await env.client.get(f"/api/accounts/{account}", headers={"x-request-id": "s1"})
        await env.gateway.drain_shadows()
    assert answer.json()["side"] == "legacy"  # the client only ever sees legacy
    assert [s.method for s in env.new.seen] == ["GET"]
    (diff,) = await _rows(sessions, "SELECT * FROM gateway_shadow_diffs")
    assert diff["route_prefix"] == "/api/accounts"
    assert diff["path_template"] == "/api/accounts/{id}"
    assert (diff["method"], diff["legacy_status"], diff["new_status"]) == ("GET", 200, 200)
    assert diff["kind"] == "body"
    assert diff["request_id"] == "s1"
    summary = diff["summary"]
    assert isinstance(summary, dict)
    assert summary["paths"] == [
        {"path": "/extra", "change": "added_in_new"},
        {"path": "/items", "change": "length", "legacy": 2, "new": 3},
        {"path": "/owner", "change": "changed"},
        {"path": "/side", "change": "changed"},
    ]  # `id` differs on every answer but is an ignored field
    stored = json.dumps(summary)
    assert "Ada" not in stored
    assert str(account) not in stored
    counts = await _rows(
        sessions, "SELECT route_prefix, compared, differed FROM gateway_shadow_counts"
    )
    assert counts == [{"route_prefix": "/api/accounts", "compared": 1, "differed": 1}]


async def test_equal_answers_are_counted_but_not_recorded_and_writes_are_not_copied(
    settings: Settings, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/api/accounts", "shadow")
    async with gateway_env(settings, gateway_shadow_ignored_fields=["id", "side"]) as env:
        await env.gateway.routes.reload()
        await env.client.get("/api/accounts")
        posted = await env.client.post("/api/accounts", json={"name": "x"})
        await env.gateway.drain_shadows()
    assert posted.json()["side"] == "legacy"
    assert [s.method for s in env.new.seen] == ["GET"]  # the POST never reached the new side
    assert await _rows(sessions, "SELECT id FROM gateway_shadow_diffs") == []
    counts = await _rows(sessions, "SELECT compared, differed FROM gateway_shadow_counts")
    assert counts == [{"compared": 1, "differed": 0}]


async def test_a_status_difference_and_an_unreachable_new_side_are_recorded(
    settings: Settings, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/api/accounts", "shadow")
    async with gateway_env(settings, gateway_new_url="http://127.0.0.1:9") as env:
        await env.gateway.routes.reload()
        answer = await env.client.get("/api/accounts")
        await env.gateway.drain_shadows()
    assert answer.status_code == 200
    (diff,) = await _rows(sessions, "SELECT kind, new_status FROM gateway_shadow_diffs")
    assert diff == {"kind": "error", "new_status": None}
    ok = Answer(200, "application/json", b"{}")
    assert compare(ok, Answer(404, "application/json", b"{}"), frozenset()) == ("status", {})


def test_non_json_bodies_are_compared_by_digest_and_large_ones_by_status_only() -> None:
    a = Answer(200, "text/plain", b"hello")
    b = Answer(200, "text/plain", b"hullo")
    kind, summary = compare(a, b, frozenset()) or ("", {})
    assert kind == "body"
    assert summary["change"] == "bytes"
    assert "hello" not in json.dumps(summary)
    big = Answer(200, "application/json", b"", complete=False)
    assert compare(big, Answer(200, "application/json", b"{}"), frozenset()) is None
