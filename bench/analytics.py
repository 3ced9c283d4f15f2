"""Analytics: the dashboard route against the raw SQL aggregate it replaces, and monthly
reports per second against a bare fan-out of no-op children.

1. A database of `--rows` transactions (default 1,000,000) of which `--customer-rows` (default
   100,000) belong to one customer, seeded by SQL. `GET /api/analytics/dashboard` is timed
   through `vortex api` in its own process (token verified, rollup read, balances, payments),
   `--requests` times in sequence; the baseline is the one aggregate over `transactions` that
   the rollup replaces (the same six months of flows per currency and category), run as many
   times on one asyncpg connection. Prints p50/p99 of each and the ratio baseline/route.
2. `MonthlyReportsWorkflow` over `--customers` (default 2,000) customers with transactions, on a
   Temporal dev server with the real workers, against `BareFanOutWorkflow` starting as many
   no-op children through the same window on the same server. Prints reports/s, children/s
   and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from temporalio.worker import Worker

from activities.analytics.periods import add_months, month_start
from api.auth.tokens import TokenService
from bench.analytics_fanout import BareFanOutWorkflow, BareNoopChildWorkflow
from bench.stack import (
    add_database_argument,
    api_process,
    bench_converter,
    bench_settings,
    bench_stores,
    temporal_dev_server,
)
from core.crypto import crypto_for
from core.db import asyncpg_dsn, create_engine, create_session_factory
from core.email import MemoryEmailBackend
from core.embedded import free_port
from temporal.schedules import monthly_reports_input
from workers.assembly import WORKFLOW_RUNNER, WorkerDeps, build_workers
from workflows.monthly_reports import MonthlyReportsWorkflow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m bench analytics`."""
    add_database_argument(parser)
    parser.add_argument("--rows", type=int, default=1_000_000, help="transactions in all")
    parser.add_argument("--customer-rows", type=int, default=100_000, help="of the one customer")
    parser.add_argument("--requests", type=int, default=200, help="timed calls of each")
    parser.add_argument("--customers", type=int, default=2_000, help="customers to report on")
    parser.add_argument("--window", type=int, default=50, help="children in flight")


_USERS = """
WITH u AS (
    INSERT INTO users (id, email, first_name, last_name, password_hash, status, mfa_enabled)
    SELECT gen_random_uuid(), 'bench-' || g || '@example.com', 'Bench', 'Customer ' || g,
        'not-a-real-hash', 'active', false
    FROM generate_series(1, $1::int) AS g
    RETURNING id
)
INSERT INTO ledger_accounts (id, kind, type, owner_user_id, name, number, currency, status,
    opened_at)
SELECT gen_random_uuid(), 'customer', 'checking', u.id, 'Main',
    CAST(800000000000 + g AS text), 'EUR', 'open',
    CASE WHEN g <= $2::int THEN TIMESTAMPTZ '2020-01-01 00:00+00' ELSE now() END
FROM (SELECT id, row_number() OVER () AS g FROM u) AS u
"""
_ROWS = """
INSERT INTO transactions (id, account_id, user_id, kind, amount, currency, direction, status,
    description, merchant, category, occurred_at)
SELECT gen_random_uuid(), a.id, a.owner_user_id, 'card', 100 + (g::bigint * 7919) % 50000,
    'EUR', CASE WHEN g % 7 = 0 THEN 'credit' ELSE 'debit' END, 'posted', 'bench row',
    'Shop ' || (g % 40),
    (ARRAY['groceries','dining','transport','salary','transfer','shopping','utilities'])[1 + g % 7],
    now() - make_interval(secs => (g::bigint * 104729) % (365 * 86400))
FROM ledger_accounts a, generate_series(1, $2::int) AS g
WHERE a.owner_user_id = ANY($1::uuid[])
"""
# The aggregate the rollup replaces: six months of flows per currency, month and category.
RAW = """
SELECT currency, date_trunc('month', occurred_at AT TIME ZONE 'UTC') AS month, category,
    sum(amount) FILTER (WHERE direction = 'credit'), count(*) FILTER (WHERE direction = 'credit'),
    sum(amount) FILTER (WHERE direction = 'debit'), count(*) FILTER (WHERE direction = 'debit')
FROM transactions
WHERE user_id = $1 AND status = 'posted' AND occurred_at >= $2
GROUP BY 1, 2, 3
"""


async def _seed(dsn: str, rows: int, customer_rows: int, customers: int) -> uuid.UUID:
    """The big customer (first user) and the others; returns the big customer's id."""
    others = max(customers, (rows - customer_rows) // 100)
    per_other = max(1, (rows - customer_rows) // others)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")
        # The full-text index is rebuilt once after the load instead of row by row.
        await conn.execute("DROP INDEX ix_transactions_search")
        await conn.execute(_USERS, others + 1, customers)
        ids = [
            r["owner_user_id"]
            for r in await conn.fetch(
                "SELECT owner_user_id FROM ledger_accounts WHERE kind = 'customer' ORDER BY number"
            )
        ]
        big, rest = ids[0], ids[1:]
        await conn.execute(_ROWS, [big], customer_rows)
        for start in range(0, len(rest), 500):
            await conn.execute(_ROWS, rest[start : start + 500], per_other)
        await conn.execute("CREATE INDEX ix_transactions_search ON transactions USING gin (search)")
        await conn.execute("ANALYZE")
        total = await conn.fetchval("SELECT count(*) FROM transactions")
        print(f"seeded {total} transactions ({customer_rows} of one customer), {others + 1} users")
        return uuid.UUID(str(big))
    finally:
        await conn.close()


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _dashboard(args: argparse.Namespace, settings: object, big: uuid.UUID, dsn: str) -> None:
    from core.settings import Settings

    assert isinstance(settings, Settings)
    port = free_port()
    tokens = TokenService(
        crypto_for(settings.secret_key.get_secret_value()).jwt_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    token, _ = tokens.issue(big, "access", 3600, sid=str(uuid.uuid4()))
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        api_process(settings, port),
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
        ) as client,
    ):
        for _ in range(10):
            (await client.get("/api/analytics/dashboard")).raise_for_status()
        route: list[float] = []
        for _ in range(args.requests):
            began = time.perf_counter()
            (await client.get("/api/analytics/dashboard")).raise_for_status()
            route.append(time.perf_counter() - began)
    since = datetime.combine(
        add_months(month_start(datetime.now(UTC).date()), -5), datetime.min.time(), UTC
    )
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(3):
            await conn.fetch(RAW, big, since)
        raw: list[float] = []
        for _ in range(args.requests):
            began = time.perf_counter()
            await conn.fetch(RAW, big, since)
            raw.append(time.perf_counter() - began)
    finally:
        await conn.close()
    r50, r99, b50, b99 = _pct(route, 0.5), _pct(route, 0.99), _pct(raw, 0.5), _pct(raw, 0.99)
    print(f"dashboard route (HTTP, rollup)  p50 {r50:8.2f} ms  p99 {r99:8.2f} ms")
    print(f"raw SQL aggregate (no HTTP)     p50 {b50:8.2f} ms  p99 {b99:8.2f} ms")
    print(
        f"ratio raw/route: p50 {b50 / r50:.2f}x  p99 {b99 / r99:.2f}x"
        " (above 1: the route is faster)"
    )


async def _reports(
    args: argparse.Namespace, settings: object, converter: object, env: object
) -> None:
    from temporalio.testing import WorkflowEnvironment

    from core.settings import Settings

    assert isinstance(settings, Settings)
    assert isinstance(env, WorkflowEnvironment)
    engine = create_engine(settings.effective_database_url, pool_size=20)
    deps = WorkerDeps(
        settings=settings, sessions=create_session_factory(engine), email=MemoryEmailBackend()
    )
    bare_queue = f"bench-bare-{uuid.uuid4().hex[:6]}"
    workers = [
        *build_workers(env.client, deps),
        Worker(
            env.client,
            task_queue=bare_queue,
            workflows=[BareFanOutWorkflow, BareNoopChildWorkflow],
            workflow_runner=WORKFLOW_RUNNER,
        ),
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        month = add_months(month_start(datetime.now(UTC).date()), -1)
        inp = monthly_reports_input(settings, f"{month:%Y-%m}").model_copy(
            update={"max_in_flight": args.window, "page_size": 500}
        )
        began = time.perf_counter()
        result = await env.client.execute_workflow(
            MonthlyReportsWorkflow.run,
            inp,
            id=f"bench-monthly-reports-{uuid.uuid4()}",
            task_queue=settings.task_queue,
            execution_timeout=timedelta(hours=1),
        )
        reports_s = time.perf_counter() - began
        began = time.perf_counter()
        children = await env.client.execute_workflow(
            BareFanOutWorkflow.run,
            [result.reports, args.window],
            id=f"bench-bare-fan-out-{uuid.uuid4()}",
            task_queue=bare_queue,
            execution_timeout=timedelta(hours=1),
        )
        bare_s = time.perf_counter() - began
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.dispose()
    print(
        f"monthly reports: {result.reports} reports ({result.skipped} skipped, {result.failed} "
        f"failed) in {reports_s:.1f} s = {result.reports / reports_s:.1f} reports/s"
    )
    print(
        f"bare fan-out:    {children} no-op children in {bare_s:.1f} s = {children / bare_s:.1f}/s"
    )
    print(f"ratio reports/bare: {(result.reports / reports_s) / (children / bare_s):.2f}")
    _ = converter


async def _run(args: argparse.Namespace) -> int:
    async with bench_stores(args.database_url) as stores:
        dsn = asyncpg_dsn(stores.database_url)
        big = await _seed(dsn, args.rows, args.customer_rows, args.customers)
        converter = bench_converter()
        async with temporal_dev_server(converter) as env:
            settings = bench_settings(stores, env.client.service_client.config.target_host)
            await _dashboard(args, settings, big, dsn)
            await _reports(args, settings, converter, env)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run both parts and print their ratios."""
    print(
        f"analytics: {args.rows} transactions, {args.customer_rows} of one customer, "
        f"{args.customers} customers to report on, window {args.window}"
    )
    return asyncio.run(_run(args))
