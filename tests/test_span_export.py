"""OTLP span export: the wire encoder says what the SDK's reference encoder says, and the
exporter delivers it to an OTLP/HTTP receiver, retrying what is worth retrying."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from core.embedded import free_port
from core.settings import Settings
from core.span_export import RETRY, OtlpHttpSpanExporter, SpanEncoder
from core.tracing import _otlp_exporter

REMOTE = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "opaque"), ("other", "x")]),
)


def _provider(resource: Resource, into: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(into))
    return provider


def _varied_spans() -> list[ReadableSpan]:
    """Spans using every part of the format: all attribute types, events, links, statuses,
    remote and local parents, trace state, two resources, scopes with and without extras."""
    finished = InMemorySpanExporter()
    api = _provider(Resource.create({"service.name": "vortex-api", "pid": 42}), finished)
    worker = _provider(Resource({"service.name": "vortex-worker"}, "https://schema/1"), finished)
    plain = api.get_tracer("vortex.sql")
    versioned = api.get_tracer("vortex.http", "1.2.3", "https://schema/2", {"scope.attr": "yes"})
    remote_parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    with versioned.start_as_current_span(
        "POST /api/payments/transfer",
        context=remote_parent,
        kind=SpanKind.SERVER,
        attributes={"http.route": "/api/payments/transfer", "http.response.status_code": 201},
        links=[Link(REMOTE, {"link.why": "batch", "link.n": 3}), Link(REMOTE)],
    ) as server:
        for value in (True, 1, 1.0, -7, 2**63 - 1, -(2**63), 0.25, "", "é€𝄞"):
            plain.start_span("SELECT", attributes={"db.value": value}).end()
        plain.start_span(
            "arrays",
            kind=SpanKind.CLIENT,
            attributes={
                "strings": ["a", "b"],
                "ints": [1, -2, 3],
                "floats": [0.5, 1.5],
                "bools": [True, False],
                "empty": [],
            },
        ).end()
        server.add_event("retry", {"attempt": 2, "reason": "503"})
        server.add_event("plain")
        server.set_status(Status(StatusCode.ERROR, "rail unavailable"))
    with plain.start_as_current_span("ok") as ok:
        ok.set_status(Status(StatusCode.OK))
        try:
            raise ValueError("boom")
        except ValueError as error:
            ok.record_exception(error)
    for kind in SpanKind:
        worker.get_tracer("temporal").start_span(f"RunActivity:{kind.name}", kind=kind).end()
    return list(finished.get_finished_spans())


def _decoded(payload: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(payload)
    return request


def _without_link_trace_states(request: ExportTraceServiceRequest) -> list[str]:
    """Clear the links' trace state (OTLP has the field; the SDK's encoder leaves it out) and
    return what was there."""
    states = []
    for resource_spans in request.resource_spans:
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                for link in span.links:
                    states.append(link.trace_state)
                    link.ClearField("trace_state")
    return states


def test_the_wire_encoding_is_the_reference_encoders_message() -> None:
    spans = _varied_spans()
    encoder = SpanEncoder()
    first = _decoded(encoder.encode(spans))
    assert _without_link_trace_states(first) == ["vendor=opaque,other=x"] * 2
    assert first == encode_spans(spans)
    again = _decoded(encoder.encode(spans))  # from the caches now
    _without_link_trace_states(again)
    assert again == first
    assert sum(len(scope.spans) for rs in first.resource_spans for scope in rs.scope_spans) == len(
        spans
    )


def test_cached_attributes_keep_their_type() -> None:
    spans = _varied_spans()
    encoder = SpanEncoder()
    encoder.encode(spans)  # fills the cache: True, 1 and 1.0 are equal dict keys
    values = [
        span.attributes[0].value
        for rs in _decoded(encoder.encode(spans)).resource_spans
        for scope in rs.scope_spans
        for span in scope.spans
        if span.attributes and span.attributes[0].key == "db.value"
    ]
    assert [value.WhichOneof("value") for value in values[:3]] == [
        "bool_value",
        "int_value",
        "double_value",
    ]
    assert values[3].int_value == -7
    assert values[5].int_value == -(2**63)


def test_an_integer_beyond_int64_drops_the_attribute_not_the_span() -> None:
    finished = InMemorySpanExporter()
    tracer = _provider(Resource({"service.name": "t"}), finished).get_tracer("t")
    tracer.start_span("big", attributes={"huge": 2**64, "kept": "yes"}).end()
    spans = list(finished.get_finished_spans())
    decoded = _decoded(SpanEncoder().encode(spans))
    assert decoded == encode_spans(spans)  # the reference encoder drops it too
    (span,) = decoded.resource_spans[0].scope_spans[0].spans
    assert [a.key for a in span.attributes] == ["kept"]


@dataclass
class Receiver:
    """A collector's OTLP/HTTP endpoint: answers the scripted statuses, then 200."""

    url: str
    statuses: list[int]
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("", [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.bodies.append(body)
            state.headers.append(dict(self.headers))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_a_batch_arrives_decodable_with_the_configured_headers(receiver: Receiver) -> None:
    settings = Settings(
        _env_file=None,
        otlp_endpoint=receiver.url.removesuffix("/v1/traces"),
        otlp_headers="x-api-key=secret,x-team=ops",
    )
    exporter = _otlp_exporter(settings)
    spans = _varied_spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    (body,) = receiver.bodies
    sent_spans = _decoded(body)
    _without_link_trace_states(sent_spans)
    assert sent_spans == encode_spans(spans)
    sent = {key.lower(): value for key, value in receiver.headers[0].items()}
    assert sent["content-type"] == "application/x-protobuf"
    assert (sent["x-api-key"], sent["x-team"]) == ("secret", "ops")
    exporter.shutdown()


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_transient_refusal_is_retried(receiver: Receiver, status: int) -> None:
    receiver.statuses = [status, status]
    exporter = OtlpHttpSpanExporter(receiver.url, retries=RETRY.new(backoff_factor=0))
    assert exporter.export(_varied_spans()) is SpanExportResult.SUCCESS
    assert len(receiver.bodies) == 3
    assert len(set(receiver.bodies)) == 1  # the same batch each time


def test_a_rejected_batch_is_reported_once_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [400]
    exporter = OtlpHttpSpanExporter(receiver.url)
    assert exporter.export(_varied_spans()) is SpanExportResult.FAILURE
    assert len(receiver.bodies) == 1


def test_an_unreachable_collector_is_a_failed_export_not_an_error() -> None:
    gone = f"http://127.0.0.1:{free_port()}/v1/traces"  # nobody listens
    exporter = OtlpHttpSpanExporter(gone, timeout=1.0, retries=RETRY.new(total=1, backoff_factor=0))
    assert exporter.export(_varied_spans()) is SpanExportResult.FAILURE


def test_after_shutdown_nothing_is_sent(receiver: Receiver) -> None:
    exporter = OtlpHttpSpanExporter(receiver.url)
    exporter.shutdown()
    assert exporter.export(_varied_spans()) is SpanExportResult.FAILURE
    assert receiver.bodies == []
