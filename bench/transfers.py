"""End-to-end internal transfers vs a bare Temporal workflow of two no-op activities.

transfer path: HTTP POST /api/payments/transfer to `vortex api` (own process) -> TransferWorkflow
check activity, ledger posting + payment completion activity) -> answer once the workflow is
done, i.e. the ledger is posted. baseline: `client.execute_workflow` of a workflow with two no-op
activities (the shape of Temporal's money-transfer sample). Both run on the same Temporal dev
server, worker process and machine, in the same run, with the same number in flight; rounds
interleave the paths, each starting once the Temporal server has gone about idle, so no path is
charged for the server work another left behind. Prints throughput, the ratio and p50/p99.

`--codec both` (the default) runs the transfer path twice, each with its own API process, workers
and task queues: payload encryption off and on (temporal/codec.py), in alternating rounds of the
same run, and prints the throughput ratio (target: the codec costs at most 10%). `--tracing`
(off, on, both) crosses with `--codec`; `--overhead` runs "tracing and codec on" against "both
off" (target: at most 10% fewer transfers per second). A traced stack exports every span (no
sampling) with the production exporter, OTLP/HTTP in batches, from its API process and its
workers to a collector-like sink in its own process (bench/otlp_sink.py) that decodes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.ledger.verify import verify_ledger
from api.services import Services
from bench.bare_workflow import (
    BareLocalTransferWorkflow,
    BareTransferWorkflow,
    noop_deposit,
    noop_withdraw,
)
from bench.seed import bench_customer
from bench.stack import (
    Stores,
    add_database_argument,
    api_process,
    bench_converter,
    bench_settings,
    bench_stores,
    python_server,
    temporal_dev_server,
)
from core.db import create_engine, create_session_factory
from core.email import MemoryEmailBackend
from core.embedded import free_port
from core.heap import freeze_startup_heap
from core.logging import configure_logging
from core.settings import Settings
from core.tracing import install_tracing
from temporal.client import data_converter
from temporal.tracing import temporal_plugins
from workers.assembly import WORKFLOW_RUNNER, WorkerDeps, build_workers

Op = Callable[[int], Awaitable[None]]
TRANSFER = "transfer (HTTP -> workflow -> ledger)"
BARE = "bare workflow, 2 no-op activities"
BARE_LOCAL = "bare workflow, 2 no-op local acts"
TEMPORAL_SERVER = "start-dev"  # in the Temporal dev server's command line (the CLI's)
SINK = "otlp sink"  # the collector's stand-in: not the platform, but on the same two cores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench transfers`."""
    parser.add_argument("--count", type=int, default=200, help="operations per round and path")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per path")
    parser.add_argument("--in-flight", type=int, default=32, help="concurrent operations")
    parser.add_argument(
        "--codec",
        choices=("on", "off", "both"),
        default="both",
        help="payload encryption of the transfer path; both: on and off in alternating rounds",
    )
    parser.add_argument(
        "--tracing",
        choices=("on", "off", "both"),
        default="off",
        help="tracing (OTLP to a local sink) of the transfer path; crossed with --codec",
    )
    parser.add_argument(
        "--trace-sample-ratio",
        type=float,
        default=1.0,
        help="share of traces kept by traced stacks (VORTEX_TRACE_SAMPLE_RATIO); 1.0: all",
    )
    parser.add_argument(
        "--overhead",
        action="store_true",
        help="tracing and codec on against both off (overrides --codec and --tracing)",
    )
    parser.add_argument(
        "--cprofile",
        metavar="FILE",
        help="after the rounds, run one more round of the last transfer path under cProfile in "
        "this process (the workers and the load client) and write the top to FILE",
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the end-to-end transfer benchmark; exit code 1 if the ledger check fails."""
    configure_logging(level="WARNING")  # as the API process: no line per transfer in the worker
    return asyncio.run(_main(args))


@dataclass
class Samples:
    """Latencies (seconds) and wall time of one path over all rounds."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process group
    # ... of which this process's event-loop thread (workers' Python and the load client); the
    # rest of "worker + client" is its other threads (the SDK's Rust core, span export).
    loop_cpu: float = 0.0

    @property
    def rate(self) -> float:
        """Operations per second."""
        return len(self.latencies) / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        """The q-quantile latency in milliseconds."""
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[round(q * 100) - 1] * 1000


async def _measure(op: Op, count: int, in_flight: int, into: Samples) -> None:
    sem = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        async with sem:
            started = time.perf_counter()
            await op(n)
            into.latencies.append(time.perf_counter() - started)

    before = _cpu_by_group()
    loop_before = time.thread_time()
    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    into.wall += time.perf_counter() - started
    into.loop_cpu += time.thread_time() - loop_before
    for group, seconds in _cpu_by_group().items():
        into.cpu[group] = into.cpu.get(group, 0.0) + seconds - before.get(group, 0.0)


def _cpu_by_group() -> dict[str, float]:
    """CPU seconds so far of the processes the paths use, grouped (on a CPU-bound machine the
    throughput ratio is roughly the inverse ratio of these per operation)."""
    totals: dict[str, float] = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if TEMPORAL_SERVER in cmd:
            group = "temporal server"
        elif "cli.main api" in cmd:
            group = "api process"
        elif "bench.otlp_sink" in cmd:
            group = SINK
        elif proc.pid == os.getpid():
            group = "worker + client"
        elif proc.info["name"] == "postgres":
            group = "postgres"
        else:
            continue
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            totals[group] = totals.get(group, 0.0) + times.user + times.system
    return totals


@dataclass(frozen=True)
class Stack:
    """One configuration of the transfer path: its own API process, workers and task queues."""

    label: str
    settings: Settings
    client: Client
    api_port: int
    traced: bool


def _label(codec: bool, tracing: bool) -> str:
    return f"{TRANSFER}, codec {'on' if codec else 'off'}, tracing {'on' if tracing else 'off'}"


def _stack_names(args: argparse.Namespace) -> dict[str, tuple[bool, bool]]:
    """Transfer-path name -> (payload encryption, tracing), for the options."""
    if args.overhead:
        return {_label(False, False): (False, False), _label(True, True): (True, True)}
    choice = {"on": [True], "off": [False], "both": [False, True]}
    return {
        _label(codec, tracing): (codec, tracing)
        for tracing in choice[args.tracing]
        for codec in choice[args.codec]
    }


async def _main(args: argparse.Namespace) -> int:
    async with (
        bench_stores(args.database_url) as stores,
        temporal_dev_server(bench_converter(payload_encryption=False)) as env,
        contextlib.AsyncExitStack() as sink,
    ):
        traced = any(t for _, t in _stack_names(args).values())
        sink_url = await sink.enter_async_context(_otlp_sink()) if traced else None
        try:
            return await _bench(args, stores, env.client, sink_url)
        finally:
            if sink_url:
                await _print_sink(sink_url)


@contextlib.asynccontextmanager
async def _otlp_sink() -> AsyncIterator[str]:
    """The collector-like sink in its own process; yields its OTLP endpoint."""
    port = free_port()
    async with python_server(port, ["-m", "bench.otlp_sink", str(port)]):
        yield f"http://127.0.0.1:{port}"


async def _print_sink(url: str) -> None:
    await asyncio.sleep(6)  # past the batch processors' 5 s delay: the last spans arrive
    async with aiohttp.ClientSession() as http, http.get(f"{url}/count") as answer:
        counts = await answer.json()
    print(
        f"OTLP sink received {counts['spans']} spans in {counts['requests']} exports "
        f"({counts['bytes'] / 1e6:.1f} MB); the most frequent, by service:"
    )
    for name, count in counts["names"].items():
        print(f"  {count:>7}  {name}")


def _stacks(
    args: argparse.Namespace, stores: Stores, client: Client, sink_url: str | None
) -> list[Stack]:
    address = client.service_client.config.target_host
    stacks = []
    for label, (encrypt, traced) in _stack_names(args).items():
        extra: dict[str, object] = (
            {"otlp_endpoint": sink_url, "trace_sample_ratio": args.trace_sample_ratio}
            if traced
            else {}
        )
        settings = bench_settings(stores, address, payload_encryption=encrypt, **extra)
        own = Client(
            **(
                client.config()
                | {
                    "data_converter": data_converter(settings),
                    "plugins": temporal_plugins() if traced else [],
                }
            )
        )
        stacks.append(Stack(label, settings, own, free_port(), traced))
    return stacks


async def _bench(
    args: argparse.Namespace, stores: Stores, client: Client, sink_url: str | None
) -> int:
    # Untraced pieces first: engines created once tracing is on are traced.
    engine = create_engine(stores.database_url, pool_size=20)
    sessions = create_session_factory(engine)
    traced_engine: AsyncEngine | None = None
    if sink_url:
        tracing_settings = bench_settings(
            stores, "", otlp_endpoint=sink_url, trace_sample_ratio=args.trace_sample_ratio
        )
        install_tracing(tracing_settings, "bench-worker")
        traced_engine = create_engine(stores.database_url, pool_size=20)
    traced_sessions = create_session_factory(traced_engine) if traced_engine else sessions
    stacks = _stacks(args, stores, client, sink_url)
    services = await Services.connect(stacks[0].settings, temporal=client)
    bare_queue = f"bench-bare-{uuid.uuid4().hex[:6]}"
    bare = Worker(
        client,
        task_queue=bare_queue,
        workflows=[BareTransferWorkflow, BareLocalTransferWorkflow],
        activities=[noop_withdraw, noop_deposit],
        workflow_runner=WORKFLOW_RUNNER,  # the same worker setup as ours: only the work differs
    )
    try:
        async with contextlib.AsyncExitStack() as running:
            await running.enter_async_context(bare)
            ops: dict[str, Op] = {}
            customer = await bench_customer(services)
            token, source, dest = customer.token, customer.source, customer.dest
            for stack in stacks:
                own = traced_sessions if stack.traced else sessions
                deps = WorkerDeps(settings=stack.settings, sessions=own, email=MemoryEmailBackend())
                for worker in build_workers(stack.client, deps):
                    await running.enter_async_context(worker)
                extra = (
                    {
                        "VORTEX_OTLP_ENDPOINT": sink_url,
                        "VORTEX_TRACE_SAMPLE_RATIO": str(args.trace_sample_ratio),
                    }
                    if stack.traced and sink_url
                    else {}
                )
                await running.enter_async_context(
                    api_process(stack.settings, stack.api_port, extra_env=extra)
                )
                # aiohttp, not httpx: the load generator shares the two cores with the platform,
                # and httpx's client spends several ms of CPU per request.
                http = await running.enter_async_context(
                    aiohttp.ClientSession(
                        f"http://127.0.0.1:{stack.api_port}",
                        timeout=aiohttp.ClientTimeout(total=120),
                    )
                )
                ops[stack.label] = _transfer_op(http, token, source, dest)
            freeze_startup_heap()  # as `vortex worker` does once its workers are built
            ops[BARE] = _bare_op(client, bare_queue, BareTransferWorkflow.run)
            ops[BARE_LOCAL] = _bare_op(client, bare_queue, BareLocalTransferWorkflow.run)
            for op in ops.values():  # warm-up
                await _measure(op, 20, args.in_flight, Samples())
            results = {name: Samples() for name in ops}
            server = _temporal_server()
            for round_number in range(args.rounds):
                for name in _round_order(list(ops), round_number):
                    await _settle(server)
                    await _measure(ops[name], args.count, args.in_flight, results[name])
            if args.cprofile:
                await _profile_round(ops[stacks[-1].label], args)
        report = await verify_ledger(sessions)
    finally:
        await services.close()
        await engine.dispose()
        if traced_engine is not None:
            await traced_engine.dispose()
    _print(results, args)
    print(f"ledger verify after the run: {'OK' if report.ok else 'FAILED'}")
    return 0 if report.ok else 1


def _round_order(names: list[str], round_number: int) -> list[str]:
    """The bare paths, then the transfer paths, these in reverse every other round.

    The transfer paths are the ones compared with each other (the overhead targets): each
    follows the other and the last bare path equally often. The order A B C D, D C B A it
    replaces let the second path follow the regular-activity bare path, the heaviest on the
    server, in every other round, and the first never (decision 94)."""
    transfers = [name for name in names if name.startswith(TRANSFER)]
    rest = [name for name in names if not name.startswith(TRANSFER)]
    return rest + (transfers if round_number % 2 == 0 else transfers[::-1])


def _temporal_server() -> psutil.Process | None:
    """The Temporal dev server's process, if found."""
    for proc in psutil.process_iter(["cmdline"]):
        if TEMPORAL_SERVER in " ".join(proc.info["cmdline"] or []):
            return proc
    return None


async def _settle(server: psutil.Process | None, *, idle_share: float = 0.05) -> None:
    """Wait (at most 10 s) until the Temporal server is about idle: the work a path leaves
    behind on it (history and visibility tasks) is charged to no path, not to the next one."""
    if server is None:
        return
    window = 0.2
    for _ in range(50):
        before = sum(server.cpu_times()[:2])
        await asyncio.sleep(window)
        if sum(server.cpu_times()[:2]) - before < idle_share * window:
            return


async def _profile_round(op: Op, args: argparse.Namespace) -> None:
    """One more round of `op` under cProfile: the worker's side of a transfer (and the load
    client's, which shares this process); CPU ms per operation of this process is printed."""
    profiler = cProfile.Profile(time.process_time)  # CPU, not wall: a shared machine
    started = time.process_time()
    profiler.enable()
    await _measure(op, args.count, args.in_flight, Samples())
    profiler.disable()
    cpu = time.process_time() - started
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(80)
    stats.dump_stats(f"{args.cprofile}.pstats")
    await asyncio.to_thread(Path(args.cprofile).write_text, text.getvalue())
    print(
        f"cProfile round: {1000 * cpu / args.count:.1f} ms CPU per transfer in this process "
        f"(workers + client, under the profiler); top in {args.cprofile}"
    )


def _transfer_op(http: aiohttp.ClientSession, token: str, source: str, dest: str) -> Op:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"from_account_id": source, "to_account_id": dest, "amount": "0.01", "currency": "EUR"}

    async def op(n: int) -> None:
        key = str(uuid.uuid4())
        for attempt in range(3):  # a dropped keep-alive connection: retry with the same key
            try:
                async with http.post(
                    "/api/payments/transfer",
                    headers=headers | {"Idempotency-Key": key},
                    json=body,
                ) as response:
                    answer = await response.json()
                    break
            except aiohttp.ClientConnectionError:
                if attempt == 2:
                    raise
        if response.status not in (200, 201) or answer.get("status") != "completed":
            raise RuntimeError(f"transfer did not complete: {response.status} {answer}")

    return op


def _bare_op(client: Client, queue: str, run: Callable[[Any, int], Awaitable[None]]) -> Op:
    async def op(n: int) -> None:
        await client.execute_workflow(run, 1, id=f"bare-{uuid.uuid4()}", task_queue=queue)

    return op


def _print(results: dict[str, Samples], args: argparse.Namespace) -> None:
    print(
        f"\nend-to-end transfers vs bare workflows ({args.rounds} rounds x {args.count} ops, "
        f"{args.in_flight} in flight, same Temporal dev server and machine)"
    )
    print(f"{'path':<62} {'ops/s':>8} {'vs local':>9} {'vs bare':>8} {'p50 ms':>8} {'p99 ms':>8}")
    local, bare = results[BARE_LOCAL].rate, results[BARE].rate
    for name, s in results.items():
        print(
            f"{name:<62} {s.rate:>8.1f} {s.rate / local:>9.2f} {s.rate / bare:>8.2f} "
            f"{s.pct(0.5):>8.1f} {s.pct(0.99):>8.1f}"
        )
    groups = sorted({g for s in results.values() for g in s.cpu} - {SINK})
    print("CPU ms per operation: " + ", ".join(groups) + " (total), then the OTLP sink's")
    for name, s in results.items():
        ops = max(len(s.latencies), 1)
        per_op = [1000 * s.cpu.get(g, 0.0) / ops for g in groups]
        print(
            f"  {name:<60} "
            + "  ".join(f"{v:6.1f}" for v in per_op)
            + f"  total {sum(per_op):6.1f}  sink {1000 * s.cpu.get(SINK, 0.0) / ops:4.1f}"
            + f"  (event-loop thread {1000 * s.loop_cpu / max(len(s.latencies), 1):5.1f})"
        )
    transfers = [name for name in results if name.startswith(TRANSFER)]
    for name in transfers:
        for label, base in (("local-activity", local), ("regular-activity", bare)):
            ratio = results[name].rate / base
            verdict = "met" if ratio >= 0.8 else "NOT met"
            print(f"target: {name} >= 0.80 x bare {label} -> {verdict} ({ratio:.2f})")
    comparisons = [
        ("codec on", _label(True, False), _label(False, False)),
        ("codec on (tracing on)", _label(True, True), _label(False, True)),
        ("tracing on", _label(False, True), _label(False, False)),
        ("tracing on (codec on)", _label(True, True), _label(True, False)),
        ("tracing and codec on", _label(True, True), _label(False, False)),
    ]
    for what, on, off in comparisons:
        if on in results and off in results:
            ratio = results[on].rate / results[off].rate
            verdict = "met" if ratio >= 0.9 else "NOT met"
            print(
                f"target: {what} >= 0.90 x off throughput -> {verdict} ({ratio:.3f}, "
                f"overhead {100 * (1 - ratio):.1f}%; p50 {results[on].pct(0.5):.1f} vs "
                f"{results[off].pct(0.5):.1f} ms)"
            )
