"""The read path's cost in process, under cProfile: the stable figure on a shared machine.

The API app is built in this process (same settings, same lifespan as `vortex api`) and each
target is called through raw ASGI messages, a few requests at a time, so no HTTP server, socket
or load generator is measured: only the app's own work (routing, dependencies, token checks,
the Redis and PostgreSQL client side, views and JSON). CPU time (`time.process_time`) per
request is the figure; wall-clock time depends on the other tenants of the machine.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI

from api.app import create_app
from core.settings import Settings

Call = Callable[[], Awaitable[int]]


def _asgi_get(app: FastAPI, path: str, token: str) -> Call:
    """A GET of `path` with the bearer token, as uvicorn would hand it to the app."""
    parts = urlsplit(path)
    headers = [
        (b"host", b"bench"),
        (b"user-agent", b"bench-reads"),
        (b"accept", b"*/*"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }

    async def call() -> int:
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope, state={}), receive, send)
        return status

    return call


async def _drive(call: Call, requests: int, concurrency: int) -> int:
    """`requests` calls, `concurrency` at a time; the number of non-200 answers."""
    errors = 0
    remaining = requests

    async def worker() -> None:
        nonlocal errors, remaining
        while remaining > 0:
            remaining -= 1
            errors += (await call()) != 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


async def profile_in_process(
    settings: Settings,
    token: str,
    paths: dict[str, str],
    *,
    requests: int,
    output: str | None,
    concurrency: int = 8,
) -> None:
    """Print each target's CPU ms per request in process, and the cProfile top of each."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        print(f"\nin-process CPU per request ({requests} requests, {concurrency} at a time)")
        for name, path in paths.items():
            call = _asgi_get(app, path, token)
            await _drive(call, 200, concurrency)  # warm-up: pools, caches, code paths
            started = time.process_time()
            errors = await _drive(call, requests, concurrency)
            cpu = time.process_time() - started
            profiler = cProfile.Profile(time.process_time)  # CPU, not wall: a shared machine
            profiler.enable()
            await _drive(call, requests, concurrency)
            profiler.disable()
            print(f"{name:<14} {1000 * cpu / requests:6.3f} ms/request  non-200: {errors}")
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(50)
            if output:
                stats.dump_stats(f"{output}.{name}.pstats")
                await asyncio.to_thread(Path(f"{output}.{name}.txt").write_text, text.getvalue())
    if output:
        print(f"cProfile tops written to {output}.<target>.txt")
