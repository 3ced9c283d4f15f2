"""Legacy migration throughput: backfill rows/s per domain vs a plain COPY of the same rows.

Part `gateway`: p50/p99 through the strangler-fig gateway against direct calls to the same
upstream, in the same run (`bench.gateway`; also `make bench ARGS=gateway`).

Part `backfill`:
seeds the legacy simulator's database with `--users` customers (accounts, history), then for
users, accounts and transactions in order runs the migration's backfill batches (the very
function the `migration.backfill_batch` activity runs: keyset read from the monolith, validation,
identity map, users/ledger accounts/opening entries/history rows, progress, one transaction per
batch) until done, and in the same run a plain `COPY` of the same legacy rows out of the
monolith's database into a bare table of ours. Temporal's round trips per batch are not in the
figure (the workflow adds one activity and one timer per batch).

The database is an embedded PostgreSQL unless VORTEX_BENCH_DATABASE_URL names a server; scratch
databases are created and dropped either way.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from dataclasses import dataclass

import asyncpg
from sqlalchemy import text

from activities.migration.batches import backfill_batch
from activities.migration.legacy import LegacyDatabase
from activities.migration.verify import verify_domain
from bench.gateway import add_load_arguments, overhead_main
from bench.stack import add_database_argument, scratch_databases
from core.db import SessionFactory, create_engine, create_session_factory, transaction
from legacysim.schema import create_schema, legacy_dsn
from legacysim.seed import seed
from models.migrate import upgrade_to_head_async
from models.migration.payloads import BatchInput, VerifyInput
from models.migration.tables import MigrationDomain

PARTS = ("backfill", "gateway")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench migration`."""
    parser.add_argument("--part", choices=PARTS, action="append", help="default: all parts")
    parser.add_argument("--users", type=int, default=300, help="legacy customers to seed")
    parser.add_argument("--history", type=int, default=8, help="transactions per account")
    parser.add_argument("--batch-size", type=int, default=200)
    add_load_arguments(parser)  # the gateway part's
    add_database_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Run the selected parts and print their tables."""
    return asyncio.run(_main(args))


@dataclass
class DomainFigure:
    """One domain's backfill against COPY of the same rows."""

    domain: str
    rows: int
    backfill_seconds: float
    copy_seconds: float

    def line(self) -> str:
        """A table row."""
        backfill = self.rows / self.backfill_seconds
        copy = self.rows / self.copy_seconds
        return (
            f"{self.domain:<13} {self.rows:>7} {backfill:>14,.0f} {copy:>14,.0f} "
            f"{backfill / copy:>8.3f}x"
        )


async def _backfill(
    sessions: SessionFactory, legacy: LegacyDatabase, domain: MigrationDomain, size: int
) -> float:
    cursor, started = 0, time.perf_counter()
    while True:
        batch = await backfill_batch(
            sessions, legacy, BatchInput(domain=domain, after_id=cursor, limit=size)
        )
        cursor = batch.last_id
        if batch.done:
            return time.perf_counter() - started


async def _copy(legacy_url: str, url: str, table: str) -> float:
    """COPY the legacy table's rows out of the monolith into a bare table of ours."""
    source = await asyncpg.connect(legacy_dsn(legacy_url))
    target = await asyncpg.connect(legacy_dsn(url))
    try:
        bare = f"bench_copy_{table}"
        await target.execute(f"DROP TABLE IF EXISTS {bare}")
        columns = await source.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = $1 ORDER BY ordinal_position",
            table,
        )
        ddl = ", ".join(f"{c['column_name']} {c['data_type']}" for c in columns)
        await target.execute(f"CREATE TABLE {bare} ({ddl})")
        started = time.perf_counter()
        buffer = io.BytesIO()
        await source.copy_from_query(f"SELECT * FROM {table} ORDER BY id", output=buffer)
        buffer.seek(0)
        await target.copy_to_table(bare, source=buffer)
        return time.perf_counter() - started
    finally:
        await source.close()
        await target.close()


async def _backfill_part(args: argparse.Namespace, url: str, legacy_url: str) -> int:
    await upgrade_to_head_async(url)
    await create_schema(legacy_url)
    seeded = await seed(legacy_url, users=args.users, rounds=4, history=args.history)
    engine = create_engine(url, pool_size=2)
    sessions = create_session_factory(engine)
    legacy = LegacyDatabase(legacy_url)
    figures: list[DomainFigure] = []
    ok = True
    try:
        for domain in MigrationDomain:
            rows = await legacy.count(domain)
            seconds = await _backfill(sessions, legacy, domain, args.batch_size)
            if domain == MigrationDomain.USERS:  # the next domains need their owners cut over
                async with transaction(sessions) as session:
                    await session.execute(
                        text(
                            "INSERT INTO migration_runs (domain, stage, workflow_id, backfilled, "
                            "quarantined, applied_events, backfill_cursor, cdc_cursor) VALUES "
                            "('users', 'cut_over', 'bench', 0, 0, 0, 0, 0)"
                        )
                    )
            copy = await _copy(legacy_url, url, domain.value)
            figures.append(DomainFigure(domain.value, rows, seconds, copy))
            report = await verify_domain(
                sessions, legacy, VerifyInput(domain=domain, sample_size=10)
            )
            ok = ok and report.ok
    finally:
        await engine.dispose()
    total = DomainFigure(
        "all",
        sum(f.rows for f in figures),
        sum(f.backfill_seconds for f in figures),
        sum(f.copy_seconds for f in figures),
    )
    print(
        f"migration backfill: {seeded.users} users, {seeded.accounts} accounts, "
        f"{seeded.transactions} transactions; batch {args.batch_size}"
    )
    print(f"{'domain':<13} {'rows':>7} {'backfill rows/s':>14} {'COPY rows/s':>14} {'ratio':>9}")
    for figure in [*figures, total]:
        print(figure.line())
    print(f"verification after the backfill: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


async def _main(args: argparse.Namespace) -> int:
    prefixes = ("vortex_bench", "vortex_bench_legacy")
    async with scratch_databases(args.database_url, *prefixes) as scratch:
        url, legacy_url = scratch.urls
        status = 0
        for part in args.part or PARTS:
            if part == "backfill":
                status |= await _backfill_part(args, url, legacy_url)
            elif part == "gateway":
                status |= await overhead_main(args)
        return status
