"""OpenTelemetry tracing, off unless `VORTEX_OTLP_ENDPOINT` is set (docs/observability.md).

Off (the default) nothing is instrumented: no tracer provider is set (the API's tracer is the
no-op one), the SDK is not imported, Temporal clients get no plugin, and the log processor and
problem answers skip the trace id after one module-level check.

On, one tracer provider (`core/trace_provider.py`: Temporal's replay-safe one inside workflows,
whose spans keep their ids and durations across replays) exports over OTLP/HTTP in batches
(`core/span_export.py`), and these are traced:
the API's requests (FastAPI's own server span, `app_telemetry`), every Temporal call, workflow and
activity (`OpenTelemetryPlugin` on each client; workers inherit it), SQL through each engine
(`trace_engine`), Redis commands and outgoing httpx calls (the rail, whose webhook comes back
with the `traceparent` it was given). Background loops' orphan client spans (a relay poll, a
hub's XREAD) are not sampled: they would make one useless trace each.
"""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from structlog.typing import EventDict, WrappedLogger

from core.trace_provider import ensure_provider

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine

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

    ensure_provider(settings, service, _SWITCH)  # type: ignore[arg-type]
    if processor is None:
        processor = BatchSpanProcessor(exporter or _otlp_exporter(settings))
    _SWITCH.set(processor)
    _active = Tracing(service, _instrument_clients())
    return _active


def _otlp_exporter(settings: Settings) -> SpanExporter:
    from core.span_export import OtlpHttpSpanExporter

    assert settings.otlp_endpoint is not None
    headers = dict(part.split("=", 1) for part in settings.otlp_headers.split(",") if "=" in part)
    endpoint = settings.otlp_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    return OtlpHttpSpanExporter(endpoint, headers)


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
