"""OpenTelemetry tracing, off unless `VORTEX_OTLP_ENDPOINT` is set (docs/observability.md).

Off (the default) nothing is instrumented: no tracer provider is set (the API's tracer is the
no-op one), the SDK is not imported, Temporal clients get no plugin, and the log processor and
problem answers skip the trace id after one module-level check.

On, one replay-safe tracer provider (Temporal's `create_tracer_provider`: workflow spans keep
their ids and durations across replays) exports over OTLP/HTTP in batches, and these are traced:
the API's requests (FastAPI's own server span, `app_telemetry`), every Temporal call, workflow and
activity (`OpenTelemetryPlugin` on each client; workers inherit it), SQL through each engine
(`trace_engine`), Redis commands and outgoing httpx calls (the rail, whose webhook comes back
with the `traceparent` it was given). Background loops' orphan client spans (a relay poll, a
hub's XREAD) are not sampled: they would make one useless trace each.
"""

from __future__ import annotations

import threading
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from structlog.typing import EventDict, WrappedLogger

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

    from core.settings import Settings

# First path segments whose requests are never traced: probes and scrapes, several a second.
UNTRACED_PATHS = frozenset({"health", "ready", "metrics"})


@dataclass
class Tracing:
    """What `install_tracing` switched on, so that `shutdown` can switch it off again."""

    service: str
    instrumentors: list[BaseInstrumentor] = field(default_factory=list)

    def shutdown(self) -> None:
        """Flush pending spans, stop exporting and remove the instrumentation."""
        global _active
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        EngineTracer.remove_all_event_listeners()  # type: ignore[no-untyped-call]
        _SWITCH.set(None)
        _active = None


_active: Tracing | None = None  # the one installed tracing of this process, if any


def tracing_enabled() -> bool:
    """Whether this process traces (install_tracing ran and was not shut down)."""
    return _active is not None


class _SwitchableProcessor:
    """The provider's one span processor, forwarding to the current exporter's processor.

    OpenTelemetry's global provider can be set once per process and has no way to remove a
    processor; this switch lets tracing be switched off and on again (tests, benchmarks) while
    the provider stays."""

    def __init__(self) -> None:
        self._target: SpanProcessor | None = None
        self._lock = threading.Lock()

    def set(self, target: SpanProcessor | None) -> None:
        with self._lock:
            previous, self._target = self._target, target
        if previous is not None:
            previous.shutdown()  # flushes a batch processor first

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        target = self._target
        if target is not None:
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        target = self._target
        if target is not None:
            target.on_end(span)

    def _on_ending(self, span: Any) -> None:
        """The SDK's hook just before a span ends (newer SDKs), forwarded."""
        target = self._target
        if target is not None:
            target._on_ending(span)

    def shutdown(self) -> None:
        self.set(None)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self._target
        return target.force_flush(timeout_millis) if target is not None else True


_SWITCH = _SwitchableProcessor()


def install_tracing(
    settings: Settings,
    service: str,
    *,
    exporter: SpanExporter | None = None,
    processor: SpanProcessor | None = None,
) -> Tracing | None:
    """Switch tracing on for this process when an OTLP endpoint is set (or a test or benchmark
    gives its own `exporter`, batched, or `processor`); returns None and does nothing else."""
    global _active
    if exporter is None and processor is None and not settings.otlp_endpoint:
        return None
    if _active is not None:
        _active.shutdown()
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _ensure_provider(settings, service)
    if processor is None:
        processor = BatchSpanProcessor(exporter or _otlp_exporter(settings))
    _SWITCH.set(processor)
    _active = Tracing(service, _instrument_clients())
    return _active


def _ensure_provider(settings: Settings, service: str) -> None:
    """Set the global replay-safe provider, once per process (later installs reuse it)."""
    from opentelemetry.sdk.resources import Resource
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider, create_tracer_provider

    if isinstance(trace.get_tracer_provider(), ReplaySafeTracerProvider):
        return
    provider = _tracers_made_once(
        create_tracer_provider(
            sampler=_sampler(settings.trace_sample_ratio),
            resource=Resource.create({"service.name": f"{settings.service_name_prefix}-{service}"}),
        )
    )
    provider.add_span_processor(_SWITCH)  # type: ignore[arg-type]
    trace.set_tracer_provider(provider)


def _tracers_made_once(inner: ReplaySafeTracerProvider) -> ReplaySafeTracerProvider:
    """Temporal's replay-safe provider, answering `get_tracer` from a cache (decision 94).

    The Temporal plugin asks for its tracer on every span it makes. The SDK's `get_tracer` adds a
    warnings filter each time, and the filter imports `re`: inside a workflow, through the
    sandbox's importer. The tracers are stateless wrappers of the SDK's own (which it caches by
    scope), so one per name, version and schema is the same tracer. Everything else is the
    wrapped provider's."""
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

    class TracersMadeOnce(ReplaySafeTracerProvider):
        def __init__(self) -> None:  # no super().__init__: every method is the inner one's
            self._tracers: dict[tuple[str, str | None, str | None], trace.Tracer] = {}

        def get_tracer(
            self,
            instrumenting_module_name: str,
            instrumenting_library_version: str | None = None,
            schema_url: str | None = None,
            attributes: Any = None,
        ) -> trace.Tracer:
            if attributes is not None:  # attributes are part of the scope, and unhashable
                return inner.get_tracer(
                    instrumenting_module_name, instrumenting_library_version, schema_url, attributes
                )
            key = (instrumenting_module_name, instrumenting_library_version, schema_url)
            tracer = self._tracers.get(key)
            if tracer is None:
                tracer = self._tracers.setdefault(key, inner.get_tracer(*key))
            return tracer

        def add_span_processor(self, span_processor: Any) -> None:
            inner.add_span_processor(span_processor)

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

        def id_generator(self) -> Any:
            return inner.id_generator()

        def __getattr__(self, name: str) -> Any:  # anything a later SDK adds
            return getattr(inner, name)

    return TracersMadeOnce()


def _otlp_exporter(settings: Settings) -> SpanExporter:
    from core.span_export import OtlpHttpSpanExporter

    assert settings.otlp_endpoint is not None
    headers = dict(part.split("=", 1) for part in settings.otlp_headers.split(",") if "=" in part)
    endpoint = settings.otlp_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    return OtlpHttpSpanExporter(endpoint, headers)


def _sampler(ratio: float) -> Any:
    """Parent-based: a trace is whole or absent. A span with a sampled parent is sampled; with a
    local unsampled parent, dropped. A new trace is sampled at `ratio`, except one that would
    start at a client call (SQL, Redis, HTTP out) outside any request, workflow or activity:
    background polling, noise without a cause to find. A caller's "not sampled" flag does not
    silence our side: the API decides afresh (as for a new trace) and keeps the caller's trace id.

    What the SDK's `ParentBased(root, remote_parent_not_sampled=root)` decides, in one call:
    that composition looks the parent span up twice and dispatches through two more samplers
    for every span, a tenth of a span's recording cost (decision 95)."""
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )
    from opentelemetry.trace import SpanKind

    ratio_sampler = TraceIdRatioBased(ratio)

    class _VortexSampler(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Sequence[Any] | None = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            parent = trace.get_current_span(parent_context).get_span_context()
            if parent.is_valid:
                if parent.trace_flags.sampled:
                    return SamplingResult(
                        Decision.RECORD_AND_SAMPLE, attributes, parent.trace_state
                    )
                if not parent.is_remote:
                    return SamplingResult(Decision.DROP, None, parent.trace_state)
            if kind == SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            return ratio_sampler.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"VortexParentBased{{root={ratio_sampler.get_description()}, no clients}}"

    return _VortexSampler()


def _instrument_clients() -> list[BaseInstrumentor]:
    """Process-wide instrumentation of Redis commands and outgoing httpx calls."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentors: list[BaseInstrumentor] = [HTTPXClientInstrumentor(), RedisInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument()
    return instrumentors


def app_telemetry() -> TelemetryConfig:
    """FastAPI's own telemetry settings (`FastAPI(telemetry=...)`): one server span per request,
    named `METHOD /route/{template}` once the router picks the route, when tracing is on.

    Without FastAPI's operation spans (dependencies, endpoint, serialization: three more spans a
    request), its metrics (the API's request metrics are Prometheus', api/middleware.py) and its
    log records (structlog writes the lines, with the trace id); probes and scrapes untraced."""
    return {
        "tracing": _active is not None,
        "operation_spans": False,
        "metrics": False,
        "logs": False,
        "auto_configure": False,
        "exclude": _untraced,
    }


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    """Whether a request is a probe or a scrape (`/health...`, `/ready`, `/metrics`)."""
    return str(scope.get("path", "")).lstrip("/").split("/", 1)[0] in UNTRACED_PATHS


def trace_engine(engine: AsyncEngine) -> None:
    """Trace this engine's SQL statements, when tracing is on."""
    if _active is None:
        return
    from opentelemetry import metrics

    # The instrumentor is a singleton that instruments one engine per process; its per-engine
    # tracer is what it uses underneath (the connection gauge stays a no-op: no meter provider).
    usage = metrics.get_meter(__name__).create_up_down_counter("db.client.connections.usage")
    _lean_engine_tracer()(trace.get_tracer("vortex.sql"), engine.sync_engine, usage)


def _lean_engine_tracer() -> Any:
    """The instrumentation's `EngineTracer` with a cheaper per-statement hook (decision 78).

    Same spans, names and attributes, but the connection's attributes (parsed from the URL on
    every statement upstream) are computed once per engine and the span starts with all its
    attributes at once instead of one `set_attribute` call each: about half the CPU per SQL
    span, which is most of the spans of a transfer. Registration, the end of the span, errors
    and removal stay the instrumentation's."""
    from opentelemetry.instrumentation import _semconv
    from opentelemetry.instrumentation.sqlalchemy import engine

    upstream: Any = engine  # untyped
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled

    class LeanEngineTracer(upstream.EngineTracer):  # type: ignore[misc]
        def __init__(self, tracer: Any, sync_engine: Any, usage: Any) -> None:
            super().__init__(tracer, sync_engine, usage)
            db_mode = self._sem_conv_opt_in_mode_db
            attrs, self._url_has_host = upstream._get_attributes_from_url(
                sync_engine.url, db_mode, self._sem_conv_opt_in_mode_http
            )
            _semconv._set_db_system(attrs, self.vendor, db_mode)
            self._connection_attrs: dict[str, Any] = attrs
            self._db_mode = db_mode

        def _before_cur_exec(
            self,
            conn: Any,
            cursor: Any,
            statement: Any,
            params: Any,
            context: Any,
            executemany: bool,
        ) -> tuple[Any, Any]:
            if not self._url_has_host or self.enable_commenter:  # a socket path: upstream's way
                answer: tuple[Any, Any] = super()._before_cur_exec(
                    conn, cursor, statement, params, context, executemany
                )
                return answer
            if not is_instrumentation_enabled():
                return statement, params
            name = self._operation_name(None, statement)
            attrs = dict(self._connection_attrs)
            _semconv._set_db_statement(attrs, statement, self._db_mode)
            _semconv._set_db_operation(attrs, name, self._db_mode)
            context._otel_span = self.tracer.start_span(
                name, kind=trace.SpanKind.CLIENT, attributes=attrs
            )
            return statement, params

    return LeanEngineTracer


def current_trace_id() -> str | None:
    """The current trace's id (32 hex digits), or None when not tracing or outside a span."""
    if _active is None:
        return None
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def add_trace_context(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """structlog processor: the current trace and span ids on the log line (when tracing)."""
    if _active is None:
        return event
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", f"{context.trace_id:032x}")
        event.setdefault("span_id", f"{context.span_id:016x}")
    return event
