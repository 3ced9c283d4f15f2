"""The gateway as a proxy: routing by mode, headers, request ids, timeouts, retries, streaming."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import httpx

from core.db import SessionFactory
from core.settings import Settings
from gateway.app import Gateway
from tests.gateway_support import (
    CHUNK,
    bearer,
    gateway_env,
    put_route,
    serve,
    slammer,
)


async def test_no_route_means_legacy_and_modes_pick_the_side(
    settings: Settings, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/api/accounts", "new")
    await put_route(sessions, "/api/accounts/legacy-only", "legacy")
    async with gateway_env(settings) as env:
        await env.gateway.routes.reload()
        sides = {
            path: (await env.client.get(path)).json()["side"]
            for path in (
                "/api/transactions",
                "/api/accounts",
                "/api/accounts/42",
                "/api/accountsx",  # not below the prefix: a segment boundary
                "/api/accounts/legacy-only/1",  # the longest prefix wins
            )
        }
    assert sides == {
        "/api/transactions": "legacy",
        "/api/accounts": "new",
        "/api/accounts/42": "new",
        "/api/accountsx": "legacy",
        "/api/accounts/legacy-only/1": "legacy",
    }


async def test_hop_by_hop_headers_are_stripped_both_ways_and_forwarding_headers_added(
    settings: Settings, sessions: SessionFactory
) -> None:
    async with gateway_env(settings) as env:
        answer = await env.client.post(
            "/api/transactions?x=1",
            content=b'{"a": 1}',
            headers={
                "connection": "keep-alive, x-drop-me",
                "x-drop-me": "secret",
                "keep-alive": "timeout=5",
                "te": "trailers",
                "trailer": "x-checksum",
                "proxy-authorization": "Basic Zm9vOmJhcg==",
                "x-forwarded-for": "198.51.100.1",
                "x-end-to-end": "kept",
                "content-type": "application/json",
            },
        )
    assert answer.status_code == 200
    seen = env.legacy.seen[-1]
    for gone in ("x-drop-me", "keep-alive", "te", "trailer", "proxy-authorization"):
        assert gone not in seen.headers, gone
    assert seen.headers["x-end-to-end"] == "kept"
    assert seen.body_bytes == 8
    assert seen.headers["x-forwarded-for"] == "198.51.100.1, 203.0.113.7"
    assert seen.headers["x-forwarded-proto"] == "http"
    assert seen.headers["x-forwarded-host"] == "shop.example"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", seen.headers["traceparent"])
    assert re.fullmatch(r"[0-9a-f]{32}", seen.headers["x-request-id"])
    assert answer.headers["x-request-id"] == seen.headers["x-request-id"]
    for gone in ("keep-alive", "x-hop-secret", "proxy-authenticate"):
        assert gone not in answer.headers, gone
    assert answer.headers["x-upstream"] == "legacy"


async def test_the_gateway_adds_no_cookies_or_headers_of_its_own_between_users(
    settings: Settings, sessions: SessionFactory
) -> None:
    async with gateway_env(settings) as env:
        for name in ("accept-encoding", "user-agent"):  # the test client's defaults
            del env.client.headers[name]
        login = await env.client.get("/login")
        env.client.cookies.clear()  # the next request is another user's
        await env.client.get("/api/accounts")
    assert login.headers["set-cookie"] == "session=ada; Path=/"  # relayed to its user
    other = env.legacy.seen[-1].headers
    assert "cookie" not in other  # never replayed from a shared jar to someone else
    assert "accept-encoding" not in other  # so a body is never compressed unasked
    assert "user-agent" not in other


async def test_a_callers_request_id_and_traceparent_are_passed_through(
    settings: Settings, sessions: SessionFactory
) -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with gateway_env(settings) as env:
        answer = await env.client.get(
            "/api/accounts", headers={"x-request-id": "req-abc-123", "traceparent": trace}
        )
        bogus = await env.client.get("/api/accounts", headers={"traceparent": "00-zz-bad-01"})
    assert answer.headers["x-request-id"] == "req-abc-123"
    assert env.legacy.seen[0].headers["x-request-id"] == "req-abc-123"
    assert env.legacy.seen[0].headers["traceparent"] == trace
    assert bogus.status_code == 200
    assert env.legacy.seen[1].headers["traceparent"] != "00-zz-bad-01"


async def test_a_request_the_upstream_does_not_answer_in_time_gets_a_problem_504(
    settings: Settings, sessions: SessionFactory
) -> None:
    async with gateway_env(settings, gateway_read_timeout_seconds=0.3) as env:
        answer = await env.client.get("/slow", headers={"x-request-id": "slow-1"})
    assert answer.status_code == 504
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"].endswith("/gateway-timeout")
    assert problem["status"] == 504
    assert problem["request_id"] == "slow-1"
    assert len(env.legacy.seen) == 1  # a timeout is never retried


async def test_a_post_without_idempotency_key_is_never_retried_but_a_get_is_once(
    settings: Settings, sessions: SessionFactory
) -> None:
    async with (
        slammer() as dead,
        gateway_env(settings) as env,
        Gateway(
            env.gateway.settings.model_copy(update={"gateway_legacy_url": dead.url})
        ).running() as gw,
    ):
        transport = httpx.ASGITransport(app=gw)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            post = await client.post("/api/transactions", json={"amount": 1})
            after_post = dead.connections
            keyed = await client.post(
                "/api/transactions", json={"amount": 1}, headers={"idempotency-key": "k1"}
            )
            after_keyed = dead.connections
            get = await client.get("/api/transactions")
    assert post.status_code == 502
    assert post.json()["type"].endswith("/bad-gateway")
    assert after_post == 1  # the POST went once
    assert keyed.status_code == 502
    assert after_keyed - after_post == 1  # its body was already sent: not repeated either
    assert get.status_code == 502
    assert dead.connections - after_keyed == 2  # a GET is retried once


async def test_large_bodies_stream_through_without_being_held_whole(
    settings: Settings, sessions: SessionFactory
) -> None:
    async with (
        gateway_env(settings) as env,
        serve(env.gateway) as gateway_url,
        httpx.AsyncClient(base_url=gateway_url, timeout=30) as client,
    ):
        # Download: the upstream sends the rest only after the client saw the first chunk,
        # so a gateway that buffered the whole answer would never deliver anything.
        sizes = Counter[str]()
        async with client.stream("GET", "/big") as answer:
            async for chunk in answer.aiter_raw():
                if not env.legacy.release.is_set():
                    env.legacy.release.set()
                sizes["bytes"] += len(chunk)
        assert sizes["bytes"] == CHUNK * (1 + env.legacy.big_chunks)

        # Upload: the client sends the rest only after the upstream got the first chunk.
        async def body() -> object:
            yield b"x" * CHUNK
            await asyncio.wait_for(env.legacy.first_chunk.wait(), 10)
            for _ in range(100):
                yield b"y" * CHUNK

        uploaded = await client.post("/upload", content=body())  # type: ignore[arg-type]
    assert uploaded.json() == {"received": CHUNK * 101}


async def test_canary_splits_users_by_a_stable_hash_of_their_subject(
    settings: Settings, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/api/accounts", "canary", canary_percent=30)
    async with gateway_env(settings) as env:
        await env.gateway.routes.reload()
        sides = Counter[str]()
        for i in range(200):
            answer = await env.client.get("/api/accounts", headers=bearer(f"user-{i}"))
            sides[answer.json()["side"]] += 1
        again = {
            (await env.client.get("/api/accounts", headers=bearer(f"user-{i}"))).json()["side"]
            for i in (7, 7, 7)
        }
    # sha256 of prefix and subject: the split is exact and the same on every run and process.
    assert sides == Counter({"legacy": 130, "new": 70})  # 35 % of 200 users for a 30 % canary
    assert len(again) == 1  # one user always lands on one side


async def test_cohort_routes_only_listed_users_to_the_new_side(
    settings: Settings, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/api/accounts", "cohort", cohort=["user-a", "user-c"])
    async with gateway_env(settings) as env:
        await env.gateway.routes.reload()
        sides = {
            who: (await env.client.get("/api/accounts", headers=bearer(who))).json()["side"]
            for who in ("user-a", "user-b", "user-c")
        }
        anonymous = (await env.client.get("/api/accounts")).json()["side"]
    assert sides == {"user-a": "new", "user-b": "legacy", "user-c": "new"}
    assert anonymous == "legacy"


async def test_writes_to_a_frozen_legacy_route_are_refused_reads_pass(
    settings: Settings, sessions: SessionFactory
) -> None:
    await put_route(sessions, "/api/accounts", "legacy", legacy_writes_frozen=True)
    async with gateway_env(settings) as env:
        await env.gateway.routes.reload()
        write = await env.client.post("/api/accounts", json={})
        read = await env.client.get("/api/accounts")
    assert write.status_code == 409
    assert write.json()["type"].endswith("/legacy-writes-frozen")
    assert read.json()["side"] == "legacy"
    assert [s.method for s in env.legacy.seen] == ["GET"]
