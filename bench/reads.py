"""The dashboard's read path vs a bare FastAPI + asyncpg endpoint returning one row.

Targets: authenticated `GET /api/accounts`, `GET /api/transactions` (first page of 50 of the
demo history), `GET /api/payments` and `GET /api/auth/profile`, served by `vortex api` in its
own process with a real login token (verified, revocation-checked, user looked up). Baseline:
`bench.bare_api` in its own process on the same PostgreSQL. Rounds alternate target and baseline
so background load hits both alike. The load generator is `wrk` when it is on PATH (Debian's
package), else aiohttp. Prints req/s, p50/p99 and the API process's CPU ms per request for each,
and each target's ratio against the baseline of the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
from asyncio.subprocess import Process
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pyotp
from sqlalchemy import make_url
from temporalio.client import Client

from bench.load import Generator, Series, generator
from bench.reads_profile import profile_in_process
from bench.stack import (
    add_database_argument,
    api_process,
    bench_converter,
    bench_settings,
    bench_stores,
    python_server,
    temporal_dev_server,
)
from cli.demo import DemoCredentials, seed_demo
from core.db import create_engine, create_session_factory
from core.email import MemoryEmailBackend
from core.embedded import free_ports
from core.settings import Settings
from workers.assembly import WorkerDeps, build_workers

TARGETS: dict[str, str] = {
    "accounts": "/api/accounts",
    "transactions": "/api/transactions?limit=50",
    "payments": "/api/payments",
    "profile": "/api/auth/profile",
}
BASELINE = "bare"
# Ratio targets of issue 12 (against the bare endpoint in the same run); None: report only.
TARGET_RATIOS: dict[str, float | None] = {
    "accounts": 0.5,
    "transactions": 0.3,
    "payments": None,
    "profile": None,
}
DEMO_PAYMENTS = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench reads`."""
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--seconds", type=float, default=5.0, help="load per target and round")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--only", nargs="*", choices=list(TARGETS), default=list(TARGETS), help="targets to run"
    )
    parser.add_argument(
        "--load", choices=["auto", "wrk", "aiohttp"], default="auto", help="load generator"
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="also sample the API process with py-spy during one extra run of the first --only "
        "target (accounts by default) and write collapsed stacks to FILE (prints the top)",
    )
    parser.add_argument(
        "--cprofile",
        metavar="PREFIX",
        help="also call each --only target in process under cProfile (CPU ms per request, no "
        "HTTP server or load generator measured) and write PREFIX.<target>.txt",
    )
    parser.add_argument(
        "--cprofile-requests", type=int, default=2000, help="requests per target in --cprofile"
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the read benchmark; exit code 1 if a target answered anything but 200."""
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    async with (
        bench_stores(args.database_url) as stores,
        temporal_dev_server(bench_converter()) as env,
    ):
        settings = bench_settings(stores, env.client.service_client.config.target_host)
        api_port, bare_port = free_ports(2)
        async with (
            api_process(settings, api_port) as api,
            _bare_process(settings, bare_port) as bare,
        ):
            token = await _seed(settings, env.client, api_port)
            urls = {name: f"http://127.0.0.1:{api_port}{path}" for name, path in TARGETS.items()}
            urls[BASELINE] = f"http://127.0.0.1:{bare_port}/row"
            await _check_answers(urls, token)
            load = generator(args.load)
            auth = {"Authorization": f"Bearer {token}"}
            pids = {name: api.pid for name in TARGETS} | {BASELINE: bare.pid}
            selected = [*args.only, BASELINE]
            for name in selected:  # warm-up: pools filled, code paths hot
                await load(urls[name], auth, args.connections, 1.0, [pids[name]])
            results = {name: Series() for name in selected}
            for _ in range(args.rounds):
                for name in selected:
                    results[name].runs.append(
                        await load(urls[name], auth, args.connections, args.seconds, [pids[name]])
                    )
            if args.profile:
                await _profile(load, urls[args.only[0]], auth, args, api.pid)
        if args.cprofile:
            await profile_in_process(
                settings,
                token,
                {name: TARGETS[name] for name in args.only},
                requests=args.cprofile_requests,
                output=args.cprofile,
            )
    _print(results, args, load.__name__)
    failed = [name for name, s in results.items() if any(r.errors for r in s.runs)]
    for name, series in results.items():
        if timeouts := sum(r.timeouts for r in series.runs):
            print(f"{name}: {timeouts} requests timed out in wrk (counted as not done)")
    if failed:
        print(f"non-200 answers from: {', '.join(failed)}")
    return 1 if failed else 0


def _bare_process(settings: Settings, port: int) -> AbstractAsyncContextManager[Process]:
    """The baseline app in its own process."""
    dsn = make_url(str(settings.database_url)).set(drivername="postgresql")
    dsn_text = dsn.render_as_string(hide_password=False)
    return python_server(port, ["-m", "bench.bare_api", "--dsn", dsn_text, "--port", str(port)])


async def _seed(settings: Settings, client: Client, api_port: int) -> str:
    """The demo customer (history through the signed feed), a few transfers, and a real login:
    the token is a session token, so every request pays the revocation check."""
    engine = create_engine(str(settings.database_url), pool_size=5)
    deps = WorkerDeps(
        settings=settings, sessions=create_session_factory(engine), email=MemoryEmailBackend()
    )
    workers = build_workers(client, deps)
    try:
        async with (
            workers[0],
            workers[1],
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as http,
        ):
            credentials = await seed_demo(settings, http)
            token = await _login(http, credentials)
            await _transfers(http, token, credentials)
    finally:
        await engine.dispose()
    print(
        f"seeded the demo customer: {len(credentials.accounts)} accounts, "
        f"{credentials.transactions} transactions, {DEMO_PAYMENTS} payments"
    )
    return token


async def _login(http: httpx.AsyncClient, credentials: DemoCredentials) -> str:
    answer = await http.post(
        "/api/auth/login",
        json={
            "email": credentials.email,
            "password": credentials.password,
            "totp_code": pyotp.TOTP(credentials.totp_secret).now(),
        },
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


async def _transfers(http: httpx.AsyncClient, token: str, credentials: DemoCredentials) -> None:
    """Own transfers EUR checking -> savings, so the payments list has rows."""
    source, _ = credentials.accounts["Everyday EUR"]
    dest, _ = credentials.accounts["Savings EUR"]
    for n in range(DEMO_PAYMENTS):
        answer = await http.post(
            "/api/payments/transfer",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-reads-{n}"},
            json={
                "from_account_id": str(source),
                "to_account_id": str(dest),
                "amount": "1.00",
                "currency": "EUR",
                "description": f"bench {n}",
            },
        )
        answer.raise_for_status()


async def _check_answers(urls: dict[str, str], token: str) -> None:
    """Each target answers 200 with what it should hold before anything is measured."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        for name, url in urls.items():
            answer = await http.get(url)
            if answer.status_code != 200:
                raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:200]}")
        accounts = (await http.get(urls["accounts"])).json()
        page = (await http.get(urls["transactions"])).json()
        if len(accounts["items"]) != 3 or len(page["items"]) != 50:
            raise RuntimeError("the demo customer does not have 3 accounts and 50+ transactions")


async def _profile(
    load: Generator, url: str, headers: dict[str, str], args: argparse.Namespace, pid: int
) -> None:
    """py-spy samples the API process under accounts load; the top frames are printed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    seconds = max(5, round(args.seconds))
    recorder = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        args.profile,
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)
    await load(url, headers, args.connections, seconds + 1, [pid])
    await recorder.wait()
    print(f"\npy-spy profile of the API under {url} load: {args.profile}")
    print(top_frames(await asyncio.to_thread(Path(args.profile).read_text)))


LINE_NUMBER = re.compile(r":\d+\)$")
PROJECT_PACKAGES = ("(api/", "(core/", "(models/", "(activities/")


def top_frames(collapsed: str, limit: int = 20) -> str:
    """The frames with the most samples in a collapsed-stack profile: by self time, then the
    project's own functions by inclusive time (async stacks start at the task, not the loop)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue  # a wrapped frame name: py-spy prints names as they are
        count = int(count_text)
        total += count
        frames = [LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    lines = [f"{total} samples. Self time %:"]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:limit]:
        lines.append(f"  {100 * count / total:5.1f}  {frame}")
    lines.append("Project functions, inclusive time %:")
    ours = [kv for kv in inclusive.items() if any(p in kv[0] for p in PROJECT_PACKAGES)]
    for frame, count in sorted(ours, key=lambda kv: -kv[1])[:limit]:
        lines.append(f"  {100 * count / total:5.1f}  {frame}")
    return "\n".join(lines)


def _print(results: dict[str, Series], args: argparse.Namespace, load: str) -> None:
    base = results[BASELINE]
    print(
        f"\nreads vs bare FastAPI + asyncpg one-row endpoint ({args.rounds} rounds x "
        f"{args.seconds:g} s, {args.connections} connections, load: {load})"
    )
    print(
        f"{'target':<14} {'req/s':>8} {'vs bare':>8} {'per round':>18} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'p99 x':>6} {'CPU ms/req':>11}"
    )
    for name, series in results.items():
        rate = series.total_rate()
        per_round = " ".join(
            f"{run.rate / b.rate:.2f}" for run, b in zip(series.runs, base.runs, strict=True)
        )
        print(
            f"{name:<14} {rate:>8.0f} {rate / base.total_rate():>8.2f} "
            f"{per_round:>18} {series.median('p50_ms'):>8.1f} {series.median('p99_ms'):>8.1f} "
            f"{series.median('p99_ms') / base.median('p99_ms'):>6.1f} "
            f"{series.median('cpu_ms_per_request'):>11.2f}"
        )
    for name, target in TARGET_RATIOS.items():
        if target is None or name not in results:
            continue
        ratio = results[name].total_rate() / base.total_rate()
        verdict = "met" if ratio >= target else "NOT met"
        extra = ""
        if name == "accounts":
            p99x = results[name].median("p99_ms") / base.median("p99_ms")
            extra = f"; p99 {p99x:.1f}x bare (target <= 2x: {'met' if p99x <= 2 else 'NOT met'})"
        print(f"target: {name} >= {target} x bare -> {verdict} ({ratio:.2f}){extra}")
