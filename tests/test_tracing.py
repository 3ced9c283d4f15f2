# ruff: noqa: F811 - pytest fixtures imported from tests.tracing_support are parameter names
"""Tracing: one trace from the API request through the workflow, its activities and their SQL,
with the trace id on the log lines and in problem answers; nothing at all when tracing is off."""

from __future__ import annotations

import io
import uuid

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

from api.services import Services
from bench.seed import bench_customer
from core import tracing as tracing_module
from temporal.tracing import temporal_plugins
from tests.rail_support import eventually
from tests.replay_support import replay_history
from tests.tracing_support import (  # noqa: F401 - fixtures
    json_logs,
    log_lines,
    services,
    spans_named,
    trace_hex,
    traced_client,
    tracing,
    workers,
)
from workflows.transfer import TransferWorkflow


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _parent_ids(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_one_trace_covers_the_request_workflow_activities_and_sql(
    api: httpx.AsyncClient,
    services: Services,
    tracing: InMemorySpanExporter,
    json_logs: io.StringIO,
    traced_client: Client,
) -> None:
    customer = await bench_customer(services)
    transfers_before = _sample("vortex_transfers_total", {"currency": "EUR"})
    postings_before = _sample("vortex_ledger_postings_total", {"currency": "EUR"})
    answer = await api.post(
        "/api/payments/transfer",
        headers={"Authorization": f"Bearer {customer.token}", "Idempotency-Key": "trace-1"},
        json={
            "from_account_id": customer.source,
            "to_account_id": customer.dest,
            "amount": "1.25",
            "currency": "EUR",
        },
    )
    assert answer.status_code in (201, 202), answer.text

    async def workflow_span() -> ReadableSpan | None:
        found = spans_named(tracing.get_finished_spans(), "RunWorkflow:TransferWorkflow")
        return found[0] if found else None

    run_workflow = await eventually(workflow_span, max_wait=15)
    spans = tracing.get_finished_spans()
    (request,) = [
        s for s in spans if s.name == "POST /api/payments/transfer" and s.kind == SpanKind.SERVER
    ]
    trace_id = trace_hex(request)
    in_trace = [s for s in spans if trace_hex(s) == trace_id]
    names = {s.name for s in in_trace}
    assert run_workflow in in_trace
    assert "StartWorkflow:TransferWorkflow" in names
    systems = {(s.attributes or {}).get("db.system") for s in in_trace}
    assert {"postgresql", "redis"} <= systems  # the API's own SQL and Redis calls too
    # post_transfer runs as a local activity; its SQL spans hang below its own span, which
    # hangs from the workflow's (no zero-length StartActivity span between: temporal/tracing.py).
    (activity,) = spans_named(tuple(in_trace), "RunActivity:payments.post_transfer")
    (risk,) = spans_named(tuple(in_trace), "RunActivity:payments.assess_risk")
    assert _parent_ids(activity) == _parent_ids(risk) == run_workflow.context.span_id
    assert not spans_named(tuple(in_trace), "StartActivity:"), names
    (start,) = spans_named(tuple(in_trace), "StartWorkflow:TransferWorkflow")
    assert _parent_ids(run_workflow) == start.context.span_id
    assert _parent_ids(start) == request.context.span_id
    sql = [s for s in in_trace if (s.attributes or {}).get("db.system") == "postgresql"]
    assert any(_parent_ids(s) == activity.context.span_id for s in sql), names
    # The workflow span lasts (the plugin's, not the interceptor's zero-length spans).
    assert run_workflow.end_time is not None
    assert run_workflow.start_time is not None
    assert run_workflow.end_time > run_workflow.start_time

    # Tracing adds no workflow-task failure (a sandbox refusal would show as one).
    workflow_id = (run_workflow.attributes or {})["temporalWorkflowID"]
    history = await traced_client.get_workflow_handle(str(workflow_id)).fetch_history()
    kinds = [EventType.Name(e.event_type) for e in history.events]
    assert "EVENT_TYPE_WORKFLOW_TASK_FAILED" not in kinds
    # Replayed with the tracing plugin, the workflow makes no span again (replay-safe inside
    # workflows, decision 95: only spans made outside one skip the replay-safe wrappers).
    exported = len(tracing.get_finished_spans())
    await replay_history(history, TransferWorkflow, temporal_plugins())
    assert tracing.get_finished_spans()[exported:] == ()

    posted = [line for line in log_lines(json_logs) if line.get("event") == "transfer posted"]
    assert posted
    assert all(line.get("trace_id") == trace_id for line in posted), posted
    assert posted[0]["workflow_id"].startswith("transfer-")

    assert _sample("vortex_transfers_total", {"currency": "EUR"}) == transfers_before + 1
    assert _sample("vortex_ledger_postings_total", {"currency": "EUR"}) >= postings_before + 2


async def test_a_problem_answer_names_its_trace_and_request(
    api: httpx.AsyncClient, services: Services, tracing: InMemorySpanExporter
) -> None:
    customer = await bench_customer(services)
    answer = await api.get(
        f"/api/payments/{uuid.uuid4()}", headers={"Authorization": f"Bearer {customer.token}"}
    )
    assert answer.status_code == 404
    body = answer.json()
    (request,) = [s for s in tracing.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert body["trace_id"] == trace_hex(request)
    assert body["request_id"] == answer.headers["x-request-id"]
    # FastAPI's own server span, named and labelled by the route template, not the raw path.
    assert request.name == "GET /api/payments/{payment_id}"
    attributes = dict(request.attributes or {})
    assert attributes["http.route"] == "/api/payments/{payment_id}"
    assert attributes["http.response.status_code"] == 404
    assert attributes["http.request.method"] == "GET"
    # Request metrics are labelled by the route template, never by the raw path.
    labels = {"method": "GET", "route": "/api/payments/{payment_id}", "status": "404"}
    assert _sample("vortex_http_requests_total", labels) >= 1


async def test_probes_and_scrapes_make_no_spans(
    api: httpx.AsyncClient, tracing: InMemorySpanExporter
) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert (await api.get(path)).status_code == 200, path
    assert (await api.get("/api/accounts")).status_code == 401  # an API request is traced
    servers = [s for s in tracing.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /api/accounts"]


def test_a_tracer_is_made_once_per_name_and_stays_replay_safe(
    tracing: InMemorySpanExporter,
) -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, ReplaySafeTracerProvider)  # what the Temporal plugin requires
    first = trace.get_tracer("temporalio.contrib.opentelemetry._otel_interceptor")
    assert trace.get_tracer("temporalio.contrib.opentelemetry._otel_interceptor") is first
    assert trace.get_tracer("another") is not first
    with first.start_as_current_span("cached tracer span"):
        pass
    assert [s.name for s in tracing.get_finished_spans()] == ["cached tracer span"]


def test_with_tracing_off_nothing_is_added() -> None:
    assert not tracing_module.tracing_enabled()
    assert tracing_module.current_trace_id() is None
    assert temporal_plugins() == []
    assert tracing_module.app_telemetry()["tracing"] is False
    event = {"event": "x"}
    assert tracing_module.add_trace_context(None, "info", event) == {"event": "x"}
