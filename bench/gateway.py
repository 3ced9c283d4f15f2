"""Gateway overhead: p50/p99 latency of requests through `vortex gateway serve` against direct
calls to the same upstream, in the same run, for two upstreams:

- `bare`: `bench.bare_api` (FastAPI + asyncpg, one row per request), the cheapest real answer,
  so the gateway's own cost shows at its largest;
- `api`: the real `vortex api` answering the demo customer's `GET /api/accounts` with a session
  token (what the gateway really fronts; seeded through a Temporal dev server as `bench reads`).

Upstream and gateway run in their own processes on uvloop/httptools, as in production; the load
generator is aiohttp in this process, `--connections` concurrent clients each sending one request
after another. Direct and gateway runs take turns in `--rounds` rounds so background load hits
both alike. Every route of the (empty) table falls back to legacy, pointed at the upstream.

`gateway_overhead(stores, ...)` and `api_overhead(stores, ...)` are the measurements as
functions (for `bench ARGS=migration`); `format_overhead` prints one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass, field

import aiohttp
import psutil
from sqlalchemy import make_url

from bench.stack import Stores, add_database_argument, bench_stores, python_server
from core.embedded import free_port

TARGET_P50_RATIO = 1.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench gateway`."""
    add_load_arguments(parser)
    add_database_argument(parser)


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The load options (also `bench migration`'s gateway part)."""
    parser.add_argument("--seconds", type=float, default=6.0, help="timed load per path")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed load per path")
    parser.add_argument("--connections", type=int, default=4, help="concurrent clients")
    parser.add_argument(
        "--upstream",
        choices=["bare", "api", "both"],
        default="both",
        help="bare: bench.bare_api one-row read; api: the real API's GET /api/accounts",
    )


def run(args: argparse.Namespace) -> int:
    """Run the gateway benchmark; an exit code."""
    return asyncio.run(overhead_main(args))


@dataclass
class PathResult:
    """Latencies of one path (direct or through the gateway)."""

    name: str
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    upstream_cpu: float = 0.0  # CPU seconds of the upstream process during this path's load
    gateway_cpu: float = 0.0  # ... and of the gateway process

    def cpu_ms(self, seconds: float) -> str:
        """CPU milliseconds per request."""
        return f"{1000 * seconds / len(self.latencies):.2f}" if self.latencies else "-"

    def percentile(self, p: float) -> float:
        """The p-th percentile latency in milliseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def rate(self) -> float:
        """Requests per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0


@dataclass
class OverheadResult:
    """Direct against gateway, and the settings of the run."""

    direct: PathResult
    gateway: PathResult
    connections: int
    seconds: float
    rounds: int
    upstream: str = "bench.bare_api GET /row (one-row read)"

    @property
    def p50_ratio(self) -> float:
        """Gateway p50 / direct p50."""
        d = self.direct.percentile(50)
        return self.gateway.percentile(50) / d if d else 0.0

    @property
    def p99_ratio(self) -> float:
        """Gateway p99 / direct p99."""
        d = self.direct.percentile(99)
        return self.gateway.percentile(99) / d if d else 0.0


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def _load(
    http: aiohttp.ClientSession,
    url: str,
    seconds: float,
    connections: int,
    into: PathResult,
    pids: tuple[int, int] | None = None,
) -> None:
    deadline = time.perf_counter() + seconds
    before = (_cpu(pids[0]), _cpu(pids[1])) if pids else (0.0, 0.0)

    async def client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with http.get(url) as answer:
                    await answer.read()
                    ok = answer.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                into.latencies.append(time.perf_counter() - started)
            else:
                into.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    into.seconds += time.perf_counter() - started
    if pids:
        into.upstream_cpu += _cpu(pids[0]) - before[0]
        into.gateway_cpu += _cpu(pids[1]) - before[1]


async def gateway_overhead(
    stores: Stores,
    *,
    seconds: float = 6.0,
    rounds: int = 3,
    warmup: float = 1.0,
    connections: int = 4,
) -> OverheadResult:
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
            seconds=seconds,
            rounds=rounds,
            warmup=warmup,
            connections=connections,
        )


async def measure_overhead(
    stores: Stores,
    upstream_url: str,
    path: str,
    upstream_pid: int,
    *,
    label: str,
    token: str | None = None,
    seconds: float,
    rounds: int,
    warmup: float,
    connections: int,
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
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    direct, through = PathResult("direct"), PathResult("gateway")
    async with (
        python_server(gateway_port, ["-m", "cli.main", "gateway", "serve"], env=env) as gateway,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections), headers=headers
        ) as http,
    ):
        pids = (upstream_pid, gateway.pid)
        urls = {
            "direct": f"{upstream_url}{path}",
            "gateway": f"http://127.0.0.1:{gateway_port}{path}",
        }
        for url in urls.values():
            await _load(http, url, warmup, connections, PathResult("warmup"))
        for _ in range(rounds):
            await _load(http, urls["direct"], seconds / rounds, connections, direct, pids)
            await _load(http, urls["gateway"], seconds / rounds, connections, through, pids)
    return OverheadResult(direct, through, connections, seconds, rounds, label)


async def api_overhead(
    stores: Stores,
    *,
    seconds: float = 6.0,
    rounds: int = 3,
    warmup: float = 1.0,
    connections: int = 4,
) -> OverheadResult:
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
                token=token,
                seconds=seconds,
                rounds=rounds,
                warmup=warmup,
                connections=connections,
            )


def format_overhead(result: OverheadResult) -> str:
    """The result as a table with the ratio the issue names."""
    lines = [
        f"gateway overhead: {result.connections} concurrent clients, {result.seconds:g}s per path "
        f"in {result.rounds} interleaved rounds; upstream {result.upstream}",
        "",
        f"{'path':<9} {'requests':>9} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'upstream CPU ms/req':>20} {'gateway CPU ms/req':>19}",
    ]
    for r in (result.direct, result.gateway):
        lines.append(
            f"{r.name:<9} {len(r.latencies):>9} {r.errors:>6} {r.rate:>8.0f} "
            f"{r.percentile(50):>8.2f} {r.percentile(99):>8.2f} "
            f"{r.cpu_ms(r.upstream_cpu):>20} {r.cpu_ms(r.gateway_cpu):>19}"
        )
    verdict = "met" if result.p50_ratio <= TARGET_P50_RATIO else "MISSED"
    lines += [
        "",
        f"gateway / direct: p50 {result.p50_ratio:.2f}x, p99 {result.p99_ratio:.2f}x "
        f"(target: p50 within {TARGET_P50_RATIO}x: {verdict})",
    ]
    return "\n".join(lines)


async def overhead_main(args: argparse.Namespace) -> int:
    """Print the gateway's overhead against direct calls; 1 if a request failed."""
    options = {
        "seconds": args.seconds,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "connections": args.connections,
    }
    results = []
    async with bench_stores(args.database_url) as stores:
        if args.upstream in ("bare", "both"):
            results.append(await gateway_overhead(stores, **options))
            print(format_overhead(results[-1]), "\n", flush=True)
        if args.upstream in ("api", "both"):
            results.append(await api_overhead(stores, **options))
            print(format_overhead(results[-1]), flush=True)
    errors = sum(r.direct.errors + r.gateway.errors for r in results)
    return 0 if errors == 0 else 1
