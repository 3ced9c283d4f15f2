"""Tracing test harness: tracing on with an in-memory exporter, and the app's pieces built after
it (a Temporal client with the tracing plugin, traced engines), plus JSON log capture.

Import the fixtures into a test module (`from tests.tracing_support import tracing, ...`):
`services` and `workers` override the conftest ones, so the conftest `api` (and the external-
payment harness's live `api`) run traced. Tracing is switched off again after each test.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from api.services import Services
from core.db import create_engine, create_session_factory
from core.email import MemoryEmailBackend
from core.logging import configure_logging
from core.settings import Settings
from core.tracing import install_tracing
from temporal.tracing import temporal_plugins
from tests.conftest import RunningWorkers
from workers.assembly import WorkerDeps, build_workers


@pytest.fixture
def tracing(base_settings: Settings) -> Iterator[InMemorySpanExporter]:
    """Tracing switched on for the test, every span kept in memory (exported as it ends)."""
    exporter = InMemorySpanExporter()
    handle = install_tracing(base_settings, "test", processor=SimpleSpanProcessor(exporter))
    assert handle is not None
    yield exporter
    handle.shutdown()


@pytest.fixture
def traced_client(tracing: InMemorySpanExporter, temporal_client: Client) -> Client:
    """The test server's client with the tracing plugin (its workers inherit it)."""
    return Client(**(temporal_client.config() | {"plugins": temporal_plugins()}))


@pytest.fixture
async def services(
    settings: Settings, traced_client: Client, database_url: str
) -> AsyncIterator[Services]:
    """The API's services, built while tracing is on (traced engine, traced client)."""
    built = await Services.connect(settings, temporal=traced_client)
    yield built
    await built.close()


@pytest.fixture
async def workers(
    settings: Settings, traced_client: Client, database_url: str, outbox: MemoryEmailBackend
) -> AsyncIterator[RunningWorkers]:
    """The real workers on a traced engine and the traced client."""
    engine = create_engine(database_url, pool_size=5)
    deps = WorkerDeps(settings=settings, sessions=create_session_factory(engine), email=outbox)
    built = build_workers(traced_client, deps)
    tasks = [asyncio.create_task(w.run()) for w in built]
    yield RunningWorkers(built)
    await asyncio.gather(*(w.shutdown() for w in built), return_exceptions=True)
    await asyncio.gather(*tasks, return_exceptions=True)
    await engine.dispose()


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The project's logging (JSON) into a buffer for the test; the previous setup after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    configure_logging(fmt="json", level="INFO")
    buffer = io.StringIO()
    for handler in root.handlers:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(buffer)
    yield buffer
    root.handlers, root.level = handlers, level
    structlog.configure(**config)


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log lines written so far."""
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def trace_hex(span: ReadableSpan) -> str:
    """A span's trace id as 32 hex digits (as in logs and problem answers)."""
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def spans_named(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    """Spans whose name starts with `prefix`."""
    return [s for s in spans if s.name.startswith(prefix)]
