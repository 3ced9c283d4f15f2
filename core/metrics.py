"""Business metrics (prometheus_client), shared by every process (docs/observability.md).

The API serves the default registry at `/metrics`; a worker process serves it on
`VORTEX_WORKER_APP_METRICS_PORT` (`serve_app_metrics`), beside the Temporal SDK's own port
(temporal/metrics.py). Counters written inside a database transaction count only once it
commits (`count_after_commit`): a rolled-back attempt, retried by Temporal, is not counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from core.logging import get_logger

log = get_logger(__name__)

PAYMENT_STATUS = Counter(
    "vortex_payment_status_changes_total",
    "Payments entering a status (by the workflows' activities)",
    ["kind", "status"],
)
TRANSFERS = Counter(
    "vortex_transfers_total", "Internal transfers posted to the ledger", ["currency"]
)
TRANSFERRED_MINOR = Counter(
    "vortex_transfers_amount_minor_total",
    "Minor units moved by internal transfers (per currency: never add currencies up)",
    ["currency"],
)
LEDGER_ENTRIES = Counter(
    "vortex_ledger_entries_total", "Journal entries posted (not replays)", ["kind"]
)
LEDGER_POSTINGS = Counter(
    "vortex_ledger_postings_total", "Postings (entry lines) written", ["currency"]
)
LLM_CALLS = Counter("vortex_llm_calls_total", "Calls to the LLM", ["operation", "model", "outcome"])
LLM_TOKENS = Counter(
    "vortex_llm_tokens_total",
    "Tokens the LLM reported (kind: prompt or completion)",
    ["operation", "model", "kind"],
)
LLM_LATENCY = Histogram(
    "vortex_llm_call_seconds",
    "LLM call duration",
    ["operation", "model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

_PENDING = "vortex_metrics_pending"  # key in a DBAPI connection's `info`


def count_after_commit(conn: Connection | AsyncConnection, counter: Any, amount: float = 1) -> None:
    """Increment `counter` (a labelled child) when `conn`'s transaction commits; a rollback
    drops it."""
    sync = conn.sync_connection if isinstance(conn, AsyncConnection) else conn
    assert sync is not None, "a connection in use has its sync connection"
    sync.info.setdefault(_PENDING, []).append((counter, amount))


@event.listens_for(Engine, "commit")
def _flush_on_commit(conn: Connection) -> None:
    for counter, amount in conn.info.pop(_PENDING, ()):
        counter.inc(amount)


@event.listens_for(Engine, "rollback")
def _drop_on_rollback(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)


def record_llm_call(
    operation: str,
    model: str,
    *,
    outcome: str,
    seconds: float,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> None:
    """Count one LLM call (outcome: ok, error, refused, ...), its duration and its tokens."""
    LLM_CALLS.labels(operation, model, outcome).inc()
    LLM_LATENCY.labels(operation, model).observe(seconds)
    for kind, tokens in (("prompt", prompt_tokens), ("completion", completion_tokens)):
        if tokens:
            LLM_TOKENS.labels(operation, model, kind).inc(tokens)


def serve_app_metrics(host: str, port: int) -> Callable[[], None]:
    """Serve this process's prometheus_client registry on `port` (0: not served) from a
    daemon thread, for processes without the API's `/metrics` (the workers). Returns what
    stops it. A port that cannot be bound is logged: the worker runs on without it."""
    if not port:
        return lambda: None
    try:
        server, _ = start_http_server(port, addr=host)
    except OSError as exc:
        log.error("business metrics not served", port=port, error=str(exc))
        return lambda: None

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
