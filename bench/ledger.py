"""Ledger posting throughput: transfers/s through the ledger vs a plain-SQL transfer.

Two scenarios, each measured for the ledger's posting path (`activities.ledger.transfer` in its
own transaction: idempotency claim, locks, validation, balances, postings, customer transaction
rows, outbox events) and for a hand-written plain-SQL transfer on minimal tables (lock both rows
FOR UPDATE in id order, update two balances, insert an entry and two postings):

- uncontended: random pairs among many accounts, N concurrent workers;
- hot account: every transfer touches the same account, so they serialise on its row lock.

Both paths run on the same PostgreSQL, through the same engine and driver (SQLAlchemy + asyncpg),
in the same run. A third row shows the plain transfer on raw asyncpg (no SQLAlchemy) for
reference. The database is an embedded PostgreSQL unless VORTEX_BENCH_DATABASE_URL names a server;
a scratch database is created and dropped either way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities import ledger
from activities.ledger.batch import post_entries
from activities.ledger.verify import verify_ledger
from bench.stack import add_database_argument, scratch_databases
from core.db import SessionFactory, create_engine, create_session_factory, transaction
from models.ledger.payloads import (
    EnsureSystemAccountsInput,
    EntryLeg,
    LedgerTransferInput,
    PostEntryBatchInput,
    PostEntryInput,
)
from models.migrate import upgrade_to_head_async

CURRENCY = "EUR"
RAW_PATH = "plain SQL, raw asyncpg"
BATCH_PATH = "ledger batch"
START_BALANCE = 10**12  # nobody runs out of money: the benchmark measures posting, not refusals

# One call moves money once (None) or posts a batch (the number of entries it posted).
Transfer = Callable[[uuid.UUID, uuid.UUID, int], Awaitable[int | None]]
Pick = Callable[[], tuple[uuid.UUID, uuid.UUID]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench ledger`."""
    parser.add_argument("--seconds", type=float, default=4.0, help="timed run per measurement")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed run before each")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="the paths take turns in this many rounds, so background load hits them alike",
    )
    parser.add_argument("--workers", type=int, default=8, help="concurrent transfer loops")
    parser.add_argument("--accounts", type=int, default=1000, help="accounts (uncontended)")
    parser.add_argument(
        "--batch-size", type=int, default=100, help="entries per call of the batch posting path"
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the ledger benchmark; returns a process exit code (1 if the ledger check fails)."""
    return asyncio.run(_main(args))


@dataclass
class Result:
    """One measurement."""

    scenario: str
    path: str
    transfers: int = 0
    seconds: float = 0.0
    errors: int = 0
    client_cpu: float = 0.0
    server_cpu: float | None = None

    @property
    def rate(self) -> float:
        """Committed transfers per second."""
        return self.transfers / self.seconds if self.seconds else 0.0

    def per_transfer_ms(self, cpu: float | None) -> str:
        """CPU milliseconds per committed transfer, or '-' when unknown."""
        if cpu is None or not self.transfers:
            return "-"
        return f"{1000 * cpu / self.transfers:.2f}"

    def add(self, other: Result) -> None:
        """Accumulate another measurement of the same scenario and path."""
        self.transfers += other.transfers
        self.seconds += other.seconds
        self.errors += other.errors
        self.client_cpu += other.client_cpu
        if self.server_cpu is not None and other.server_cpu is not None:
            self.server_cpu += other.server_cpu
        else:
            self.server_cpu = None


def _server_cpu(postmaster_pid: int | None) -> float | None:
    """CPU seconds used so far by the PostgreSQL server's processes (Linux /proc only)."""
    if postmaster_pid is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == postmaster_pid or int(fields[1]) == postmaster_pid:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


# --- the plain-SQL baseline ---------------------------------------------------------------------

PLAIN_SCHEMA = [
    "CREATE TABLE plain_accounts (id uuid PRIMARY KEY, balance bigint NOT NULL "
    "CHECK (balance >= 0))",
    "CREATE TABLE plain_entries (id uuid PRIMARY KEY, created_at timestamptz NOT NULL "
    "DEFAULT now())",
    "CREATE TABLE plain_postings (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "entry_id uuid NOT NULL REFERENCES plain_entries (id), "
    "account_id uuid NOT NULL REFERENCES plain_accounts (id), amount bigint NOT NULL)",
    "CREATE INDEX ix_plain_postings_account ON plain_postings (account_id, id)",
]
PLAIN_LOCK = (
    "SELECT id, balance FROM plain_accounts WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
)
PLAIN_UPDATE = "UPDATE plain_accounts SET balance = balance + $2 WHERE id = $1"
PLAIN_ENTRY = "INSERT INTO plain_entries (id) VALUES ($1)"
PLAIN_POSTINGS = (
    "INSERT INTO plain_postings (entry_id, account_id, amount) VALUES ($1, $2, $3), ($1, $4, $5)"
)


def _sa(sql: str) -> str:
    """asyncpg placeholders ($1) to SQLAlchemy text() ones (:p1)."""
    for n in range(5, 0, -1):
        sql = sql.replace(f"${n}::uuid[]", f"CAST(:p{n} AS uuid[])").replace(f"${n}", f":p{n}")
    return sql


def plain_sqlalchemy(engine: AsyncEngine) -> Transfer:
    """The plain transfer through SQLAlchemy's async engine (same driver stack as the ledger)."""
    lock, update, entry, postings = (
        text(_sa(s)) for s in (PLAIN_LOCK, PLAIN_UPDATE, PLAIN_ENTRY, PLAIN_POSTINGS)
    )

    async def transfer(src: uuid.UUID, dst: uuid.UUID, amount: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(lock, {"p1": sorted((src, dst))})
            await conn.execute(update, {"p1": src, "p2": -amount})
            await conn.execute(update, {"p1": dst, "p2": amount})
            entry_id = uuid.uuid4()
            await conn.execute(entry, {"p1": entry_id})
            await conn.execute(
                postings, {"p1": entry_id, "p2": src, "p3": -amount, "p4": dst, "p5": amount}
            )

    return transfer


def plain_asyncpg(pool: asyncpg.Pool) -> Transfer:
    """The plain transfer on raw asyncpg: the floor of what Python can do per transfer."""

    async def transfer(src: uuid.UUID, dst: uuid.UUID, amount: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(PLAIN_LOCK, sorted((src, dst)))
            await conn.execute(PLAIN_UPDATE, src, -amount)
            await conn.execute(PLAIN_UPDATE, dst, amount)
            entry_id = uuid.uuid4()
            await conn.execute(PLAIN_ENTRY, entry_id)
            await conn.execute(PLAIN_POSTINGS, entry_id, src, -amount, dst, amount)

    return transfer


def ledger_path(sessions: SessionFactory) -> Transfer:
    """A transfer through the ledger's posting path, one transaction each (as in an activity)."""

    async def transfer(src: uuid.UUID, dst: uuid.UUID, amount: int) -> None:
        async with transaction(sessions) as session:
            await ledger.transfer(
                session,
                LedgerTransferInput(
                    idempotency_key=f"bench-{uuid.uuid4()}",
                    from_account_id=src,
                    to_account_id=dst,
                    amount=amount,
                    currency=CURRENCY,
                    description="bench transfer",
                ),
            )

    return transfer


def ledger_batch_path(sessions: SessionFactory, pick: Pick, size: int) -> Transfer:
    """`size` two-leg entries through the batch posting path in one transaction per call
    (the pair given is the first; the rest are drawn like it)."""

    async def post(src: uuid.UUID, dst: uuid.UUID, amount: int) -> int:
        pairs = [(src, dst), *(pick() for _ in range(size - 1))]
        entries = [
            PostEntryInput(
                idempotency_key=f"bench-batch-{uuid.uuid4()}",
                kind="transfer",
                description="bench batch",
                legs=[
                    EntryLeg(account_id=a, amount=-amount, currency=CURRENCY),
                    EntryLeg(account_id=b, amount=amount, currency=CURRENCY),
                ],
            )
            for a, b in pairs
        ]
        async with transaction(sessions) as session:
            result = await post_entries(session, PostEntryBatchInput(entries=entries))
        if result.rejected:
            raise RuntimeError(f"{result.rejected} entries of a batch were rejected")
        return result.posted

    return post


# --- driver -------------------------------------------------------------------------------------


async def _measure(
    transfer: Transfer,
    pick: Callable[[], tuple[uuid.UUID, uuid.UUID]],
    *,
    workers: int,
    seconds: float,
    postmaster_pid: int | None = None,
) -> Result:
    """Run `workers` loops for `seconds`: transfers, wall time, errors and CPU used."""
    done = errors = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            src, dst = pick()
            try:
                posted = await transfer(src, dst, random.randint(1, 10_000))
            except Exception:
                errors += 1
            else:
                done += 1 if posted is None else posted

    server_before = _server_cpu(postmaster_pid)
    cpu_before, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(workers)))
    elapsed, client_cpu = time.perf_counter() - started, time.process_time() - cpu_before
    server_after = _server_cpu(postmaster_pid)
    server = (
        server_after - server_before
        if server_after is not None and server_before is not None
        else None
    )
    return Result("", "", done, elapsed, errors, client_cpu, server)


async def _setup(engine: AsyncEngine, sessions: SessionFactory, accounts: int) -> list[uuid.UUID]:
    """A user, `accounts` funded ledger accounts, and the same accounts in the plain tables."""
    user_id = uuid.uuid4()
    ids = sorted(uuid.uuid4() for _ in range(accounts))
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, email, first_name, last_name, password_hash, status, "
                "mfa_enabled) VALUES (:id, 'bench@example.com', 'Bench', 'User', 'x', 'active', "
                "false)"
            ),
            {"id": user_id},
        )
        await conn.execute(
            text(
                "INSERT INTO ledger_accounts (id, kind, type, owner_user_id, name, number, "
                "currency, status) VALUES (:id, 'customer', 'checking', :owner, :name, :number, "
                ":currency, 'open')"
            ),
            [
                {
                    "id": account_id,
                    "owner": user_id,
                    "name": f"Bench {n}",
                    "number": f"{n + 1:011d}" + ledger.luhn_check_digit(f"{n + 1:011d}"),
                    "currency": CURRENCY,
                }
                for n, account_id in enumerate(ids)
            ],
        )
        for sql in PLAIN_SCHEMA:
            await conn.execute(text(sql))
        await conn.execute(
            text("INSERT INTO plain_accounts (id, balance) VALUES (:id, :balance)"),
            [{"id": a, "balance": START_BALANCE} for a in ids],
        )
    async with transaction(sessions) as session:
        system = await ledger.ensure_system_accounts(
            session, EnsureSystemAccountsInput(currency=CURRENCY)
        )
    chunk = ledger.MAX_LEGS - 1
    for start in range(0, len(ids), chunk):
        batch = ids[start : start + chunk]
        legs = [EntryLeg(account_id=a, amount=START_BALANCE, currency=CURRENCY) for a in batch]
        legs.append(
            EntryLeg(
                account_id=system.external_settlement,
                amount=-START_BALANCE * len(batch),
                currency=CURRENCY,
            )
        )
        async with transaction(sessions) as session:
            await ledger.post_entry(
                session,
                PostEntryInput(idempotency_key=f"bench-funding-{start}", kind="funding", legs=legs),
            )
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    return ids


async def _main(args: argparse.Namespace) -> int:
    async with scratch_databases(args.database_url, "vortex_bench") as scratch:
        pid = scratch.postmaster_pid
        return await _bench(args, scratch.urls[0], external=pid is None, postmaster_pid=pid)


async def _bench(
    args: argparse.Namespace, url: str, *, external: bool, postmaster_pid: int | None
) -> int:
    await upgrade_to_head_async(url)
    engine = create_engine(url, pool_size=args.workers)
    sessions = create_session_factory(engine)
    raw_dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(raw_dsn, min_size=args.workers, max_size=args.workers)
    try:
        setup_started = time.perf_counter()
        ids = await _setup(engine, sessions, args.accounts)
        hot, others = ids[0], ids[1:]

        def uncontended() -> tuple[uuid.UUID, uuid.UUID]:
            src, dst = random.sample(ids, 2)
            return src, dst

        def hot_account() -> tuple[uuid.UUID, uuid.UUID]:
            other = random.choice(others)
            return (hot, other) if random.random() < 0.5 else (other, hot)

        results: list[Result] = []
        for scenario, pick in (("uncontended", uncontended), ("hot account", hot_account)):
            paths: list[tuple[str, Transfer]] = [
                ("ledger", ledger_path(sessions)),
                ("plain SQL", plain_sqlalchemy(engine)),
                ("plain SQL, raw asyncpg", plain_asyncpg(pool)),
                (BATCH_PATH, ledger_batch_path(sessions, pick, args.batch_size)),
            ]
            totals = {path: Result(scenario, path, server_cpu=0.0) for path, _ in paths}
            for _path, transfer in paths:
                await _measure(transfer, pick, workers=args.workers, seconds=args.warmup)
            for _ in range(args.rounds):
                for path, transfer in paths:
                    totals[path].add(
                        await _measure(
                            transfer,
                            pick,
                            workers=args.workers,
                            seconds=args.seconds / args.rounds,
                            postmaster_pid=postmaster_pid,
                        )
                    )
            results.extend(totals.values())
        report = await verify_ledger(sessions)
        server = "VORTEX_BENCH_DATABASE_URL" if external else "embedded PostgreSQL"
        print(_table(results, args, server, setup=time.perf_counter() - setup_started))
        print(f"ledger verify after the run: {'OK' if report.ok else 'FAILED'}")
        return 0 if report.ok else 1
    finally:
        await pool.close()
        await engine.dispose()


def _table(results: list[Result], args: argparse.Namespace, server: str, *, setup: float) -> str:
    lines = [
        f"ledger benchmark on {server}: {args.workers} workers, {args.accounts} accounts, "
        f"{args.seconds:g}s per measurement in {args.rounds} interleaved rounds "
        f"(+{args.warmup:g}s warm-up); wall time {setup:.0f}s",
        "",
        f"{'scenario':<13} {'path':<24} {'transfers':>9} {'errors':>6} {'tx/s':>8} "
        f"{'ledger / this':>13} {'client CPU ms/tx':>16} {'server CPU ms/tx':>16}",
    ]
    for r in results:
        ledger_rate = next(
            x.rate for x in results if x.scenario == r.scenario and x.path == "ledger"
        )
        ratio = "" if r.path == "ledger" else f"{ledger_rate / r.rate:.2f}" if r.rate else "-"
        lines.append(
            f"{r.scenario:<13} {r.path:<24} {r.transfers:>9} {r.errors:>6} {r.rate:>8.0f} "
            f"{ratio:>13} {r.per_transfer_ms(r.client_cpu):>16} "
            f"{r.per_transfer_ms(r.server_cpu):>16}"
        )
    lines.append("")
    lines.append("target: ledger / plain SQL (same driver stack) >= 0.70 in both scenarios")
    lines.append("")
    for scenario in dict.fromkeys(r.scenario for r in results):
        raw = next(x for x in results if x.scenario == scenario and x.path == RAW_PATH)
        batch = next(x for x in results if x.scenario == scenario and x.path == BATCH_PATH)
        batch_ratio = batch.rate / raw.rate if raw.rate else 0.0
        verdict = "met" if batch_ratio >= 1.0 else "MISSED"
        lines.append(
            f"{scenario}: batch posting path {batch.rate:.0f} entries/s "
            f"({args.batch_size} per transaction) / raw asyncpg single transfers "
            f"{raw.rate:.0f} tx/s = {batch_ratio:.2f}x (target >= 1.0x: {verdict})"
        )
    return "\n".join(lines)
