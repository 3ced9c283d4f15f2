# ruff: noqa: F811 - pytest fixtures imported from the support modules are parameter names
"""Tracing across the rail: the activity's call carries `traceparent`, the simulator echoes it
on its webhook, and the webhook's request joins the payment's trace."""

from __future__ import annotations

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from api.services import Services
from bench.seed import bench_customer
from tests.payment_support import (  # noqa: F401 - fixtures
    GOOD_IBAN,
    api,
    api_port,
    approval_timeout,
    poll_interval,
    rail,
    settings,
    submit_max_attempts,
    webhooks_enabled,
)
from tests.rail_support import eventually
from tests.tracing_support import (  # noqa: F401 - fixtures
    services,
    trace_hex,
    traced_client,
    tracing,
    workers,
)


async def test_the_rail_webhook_joins_the_payment_trace(
    api: httpx.AsyncClient, services: Services, tracing: InMemorySpanExporter
) -> None:
    customer = await bench_customer(services)
    auth = {"Authorization": f"Bearer {customer.token}"}
    method = await api.post(
        "/api/payments/methods", headers=auth, json={"name": "Ada", "iban": GOOD_IBAN}
    )
    assert method.status_code == 201, method.text
    answer = await api.post(
        "/api/payments/external",
        headers=auth | {"Idempotency-Key": "trace-rail-1"},
        json={
            "from_account_id": customer.source,
            "payment_method_id": method.json()["id"],
            "amount": "3.00",
            "currency": "EUR",
        },
    )
    assert answer.status_code in (201, 202), answer.text

    async def webhook_span() -> ReadableSpan | None:
        found = [
            s
            for s in tracing.get_finished_spans()
            if s.name == "POST /api/webhooks/rail" and s.kind == SpanKind.SERVER
        ]
        return found[0] if found else None

    webhook = await eventually(webhook_span, max_wait=15)
    (request,) = [
        s
        for s in tracing.get_finished_spans()
        if s.name == "POST /api/payments/external" and s.kind == SpanKind.SERVER
    ]
    assert trace_hex(webhook) == trace_hex(request)

    def ancestors() -> list[str]:
        """The webhook's finished ancestors, nearest first."""
        spans = tracing.get_finished_spans()
        by_id = {s.context.span_id: s for s in spans if trace_hex(s) == trace_hex(request)}
        chain = []
        span: ReadableSpan | None = webhook
        while span is not None and span.parent is not None:
            span = by_id.get(span.parent.span_id)
            if span is not None:
                chain.append(span.name)
        return chain

    async def up_to_the_submit() -> list[str] | None:
        # A span is exported when it ends: the webhook can be answered before the rail call
        # that caused it (and the activity around that call) has returned.
        chain = ancestors()
        return chain if "RunActivity:rail.submit" in chain else None

    # Its parent is the simulator's delivery call, itself below the rail activity's submit.
    chain = await eventually(up_to_the_submit, max_wait=15)
    assert "RunActivity:rail.submit" in chain
