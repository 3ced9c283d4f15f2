"""Gateway overhead: p50/p99 latency of requests through `vortex gateway serve` against direct
calls to the same upstream, in the same run, for three upstreams:

- `bare`: `bench.bare_api` (FastAPI + asyncpg, one row per request), the cheapest real answer,
  so the gateway's own cost shows at its largest;
- `api`: the real `vortex api` answering the demo customer's `GET /api/accounts` with a session
  token (what the gateway really fronts; seeded through a Temporal dev server as `bench reads`);
- `legacy`: the monolith simulator (`vortex legacy serve`, its own database) answering a seeded
  customer's `GET /api/accounts` with its legacy token: the gateway's other, catch-all side.

Upstream and gateway run in their own processes on uvloop/httptools, as in production. The load
generator (bench/load.py) is `wrk` when installed, else aiohttp in this process: `--connections`
closed-loop clients each sending one request after another. On this two-core machine an aiohttp
generator spends about as much CPU per request as the gateway and steals it from the processes
measured; wrk does not. Direct and gateway runs take turns in `--rounds` rounds so background load
hits both alike; the ratio is of the medians over the rounds. Every route of the (empty) table
falls back to legacy, pointed at the upstream.

`gateway_overhead`, `api_overhead` and `legacy_overhead` (each `(stores, LoadOptions)`) are
the measurements as functions (for `bench ARGS=migration`); `format_overhead` prints one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from dataclasses import dataclass

from sqlalchemy import make_url

from bench.load import Series, generator
from bench.stack import Stores, add_database_argument, bench_stores, python_server
from core.embedded import free_port

TARGET_P50_RATIO = 1.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench gateway`."""
    add_load_arguments(parser)
    add_database_argument(parser)


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The load options (also `bench migration`'s gateway part)."""
    parser.add_argument("--seconds", type=float, default=3.0, help="load per path and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--load", choices=["auto", "wrk", "aiohttp"], default="auto", help="load generator"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed load per path")
    parser.add_argument("--connections", type=int, default=4, help="concurrent clients")
    parser.add_argument(
        "--upstream",
        choices=["bare", "api", "legacy", "both", "all"],
        default="all",
        help="bare: bench.bare_api one-row read; api: the real API's GET /api/accounts; "
        "legacy: the monolith simulator's GET /api/accounts; both: bare and api; all: the three",
    )


def run(args: argparse.Namespace) -> int:
    """Run the gateway benchmark; an exit code."""
    return asyncio.run(overhead_main(args))


@dataclass(frozen=True)
class LoadOptions:
    """How each path is loaded: seconds per round, rounds, untimed warm-up seconds, closed-loop
    connections, and the load generator (`auto`, `wrk`, `aiohttp`)."""

    seconds: float = 3.0
    rounds: int = 3
    warmup: float = 1.0
    connections: int = 4
    load_choice: str = "auto"


@dataclass
class OverheadResult:
    """Direct against gateway, and the settings of the run."""

    direct: Series
    gateway: Series
    connections: int
    seconds: float
    rounds: int
    upstream: str = "bench.bare_api GET /row (one-row read)"
    load: str = "wrk"

    @property
    def p50_ratio(self) -> float:
        """Gateway p50 / direct p50 (medians over the rounds)."""
        d = self.direct.median("p50_ms")
        return self.gateway.median("p50_ms") / d if d else 0.0

    @property
    def p99_ratio(self) -> float:
        """Gateway p99 / direct p99 (medians over the rounds)."""
        d = self.direct.median("p99_ms")
        return self.gateway.median("p99_ms") / d if d else 0.0

    def round_ratios(self) -> str:
        """Each round's p50 ratio."""
        pairs = zip(self.direct.runs, self.gateway.runs, strict=True)
        return " ".join(f"{g.p50_ms / d.p50_ms:.2f}" for d, g in pairs if d.p50_ms)


async def gateway_overhead(stores: Stores, options: LoadOptions) -> OverheadResult:
    """Direct and gateway latencies with `bench.bare_api` (one-row read) as the upstream."""
    dsn = (
        make_url(stores.database_url)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )
    port = free_port()
    async with python_server(
        port, ["-m", "bench.bare_api", "--dsn", dsn, "--port", str(port)]
    ) as upstream:
        return await measure_overhead(
            stores,
            f"http://127.0.0.1:{port}",
            "/row",
            upstream.pid,
            label="bench.bare_api GET /row (one-row read)",
            options=options,
        )


async def measure_overhead(
    stores: Stores,
    upstream_url: str,
    path: str,
    upstream_pid: int,
    *,
    label: str,
    headers: dict[str, str] | None = None,
    options: LoadOptions,
) -> OverheadResult:
    """Start `vortex gateway serve` in front of a running upstream and load both ways."""
    gateway_port = free_port()
    env = os.environ | {
        "VORTEX_DATABASE_URL": stores.database_url,
        "VORTEX_REDIS_URL": stores.redis_url,
        "VORTEX_GATEWAY_PORT": str(gateway_port),
        "VORTEX_GATEWAY_LEGACY_URL": upstream_url,
        "VORTEX_GATEWAY_NEW_URL": upstream_url,
        "VORTEX_LOG_LEVEL": "WARNING",
    }
    headers = headers or {}
    direct, through = Series(), Series()
    load = generator(options.load_choice)
    connections, seconds, rounds = options.connections, options.seconds, options.rounds
    async with python_server(
        gateway_port, ["-m", "cli.main", "gateway", "serve"], env=env
    ) as gateway:
        pids = (upstream_pid, gateway.pid)
        urls = {
            "direct": f"{upstream_url}{path}",
            "gateway": f"http://127.0.0.1:{gateway_port}{path}",
        }
        for url in urls.values():
            await load(url, headers, connections, options.warmup, pids)
        for _ in range(rounds):
            direct.runs.append(await load(urls["direct"], headers, connections, seconds, pids))
            through.runs.append(await load(urls["gateway"], headers, connections, seconds, pids))
    return OverheadResult(direct, through, connections, seconds, rounds, label, load.__name__)


async def api_overhead(stores: Stores, options: LoadOptions) -> OverheadResult:
    """Direct and gateway latencies with the real `vortex api` as the upstream: the demo
    customer's `GET /api/accounts` with a session token (Temporal dev server for the seed)."""
    from bench.reads import _seed
    from bench.stack import api_process, bench_converter, bench_settings, temporal_dev_server

    async with temporal_dev_server(bench_converter()) as env:
        settings = bench_settings(stores, env.client.service_client.config.target_host)
        api_port = free_port()
        async with api_process(settings, api_port) as api:
            token = await _seed(settings, env.client, api_port)
            return await measure_overhead(
                stores,
                f"http://127.0.0.1:{api_port}",
                "/api/accounts",
                api.pid,
                label="vortex api GET /api/accounts (session token)",
                headers={"Authorization": f"Bearer {token}"},
                options=options,
            )


async def legacy_overhead(stores: Stores, options: LoadOptions) -> OverheadResult:
    """Direct and gateway latencies with the legacy monolith simulator as the upstream (the
    gateway's catch-all side): a seeded customer's `GET /api/accounts` with its legacy token."""
    import httpx

    from legacysim.schema import create_schema, drop_database, ensure_database, legacy_url_beside
    from legacysim.seed import seed

    url = legacy_url_beside(stores.database_url, f"vortex_legacy_bench_{uuid.uuid4().hex[:8]}")
    await ensure_database(url)
    try:
        await create_schema(url)
        seeded = await seed(url, users=5, rounds=4)
        email, password = seeded.credentials[0]
        port = free_port()
        env = os.environ | {
            "VORTEX_LEGACY_DATABASE_URL": url,
            "VORTEX_LEGACY_PORT": str(port),
            "VORTEX_LOG_LEVEL": "WARNING",
        }
        async with python_server(port, ["-m", "cli.main", "legacy", "serve"], env=env) as legacy:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base) as http:
                login = await http.post(
                    "/api/auth/login", json={"username": email, "password": password}
                )
                login.raise_for_status()
            return await measure_overhead(
                stores,
                base,
                "/api/accounts",
                legacy.pid,
                label="legacy monolith (legacysim) GET /api/accounts (legacy token)",
                headers={"Authorization": f"Token {login.json()['token']}"},
                options=options,
            )
    finally:
        await drop_database(url)


def format_overhead(result: OverheadResult) -> str:
    """The result as a table with the ratio the issue names (medians over the rounds)."""
    lines = [
        f"gateway overhead: {result.connections} concurrent clients ({result.load}), "
        f"{result.seconds:g}s per path and round, {result.rounds} interleaved rounds; "
        f"upstream {result.upstream}",
        "",
        f"{'path':<9} {'requests':>9} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'upstream CPU ms/req':>20} {'gateway CPU ms/req':>19}",
    ]
    for name, series in (("direct", result.direct), ("gateway", result.gateway)):
        lines.append(
            f"{name:<9} {series.requests:>9} {series.errors:>6} {series.total_rate():>8.0f} "
            f"{series.median('p50_ms'):>8.2f} {series.median('p99_ms'):>8.2f} "
            f"{series.median_cpu_ms(0):>20.2f} {series.median_cpu_ms(1):>19.2f}"
        )
    verdict = "met" if result.p50_ratio <= TARGET_P50_RATIO else "MISSED"
    lines += [
        "",
        f"gateway / direct: p50 {result.p50_ratio:.2f}x (rounds: {result.round_ratios()}), "
        f"p99 {result.p99_ratio:.2f}x (target: p50 within {TARGET_P50_RATIO}x: {verdict})",
    ]
    return "\n".join(lines)


async def overhead_main(args: argparse.Namespace) -> int:
    """Print the gateway's overhead against direct calls; 1 if a request failed."""
    options = LoadOptions(args.seconds, args.rounds, args.warmup, args.connections, args.load)
    results = []
    async with bench_stores(args.database_url) as stores:
        if args.upstream in ("bare", "both", "all"):
            results.append(await gateway_overhead(stores, options))
            print(format_overhead(results[-1]), "\n", flush=True)
        if args.upstream in ("api", "both", "all"):
            results.append(await api_overhead(stores, options))
            print(format_overhead(results[-1]), "\n", flush=True)
        if args.upstream in ("legacy", "all"):
            results.append(await legacy_overhead(stores, options))
            print(format_overhead(results[-1]), flush=True)
    errors = sum(r.direct.errors + r.gateway.errors for r in results)
    return 0 if errors == 0 else 1
