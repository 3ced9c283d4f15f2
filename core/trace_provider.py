"""The process's tracer provider (core/tracing.py installs it): Temporal's replay-safe one for
spans made inside workflows, the SDK's for every other span, one sampler, one processor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from temporalio import workflow

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

    from core.settings import Settings


def ensure_provider(settings: Settings, service: str, processor: SpanProcessor) -> None:
    """Set the global replay-safe provider with its one span `processor`, once per process
    (later installs reuse it)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider, create_tracer_provider

    if isinstance(trace.get_tracer_provider(), ReplaySafeTracerProvider):
        return
    sampler = parent_based_sampler(settings.trace_sample_ratio)
    resource = Resource.create({"service.name": f"{settings.service_name_prefix}-{service}"})
    replay_safe = create_tracer_provider(sampler=sampler, resource=resource)
    # The same ids, sampler and resource (and, below, processor) for spans made elsewhere.
    elsewhere = TracerProvider(
        sampler=sampler,
        resource=resource,
        id_generator=replay_safe.id_generator(),
        shutdown_on_exit=False,  # the replay-safe one's exit hook flushes the shared processor
    )
    provider = _tracers_made_once(replay_safe, elsewhere)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)


def _tracers_made_once(
    inner: ReplaySafeTracerProvider, elsewhere: SdkTracerProvider
) -> ReplaySafeTracerProvider:
    """Temporal's replay-safe provider, answering `get_tracer` from a cache (decision 94), with
    tracers that take the replay-safe path only inside workflows (decision 95).

    The Temporal plugin asks for its tracer on every span it makes. The SDK's `get_tracer` adds a
    warnings filter each time, and the filter imports `re`: inside a workflow, through the
    sandbox's importer. The tracers are stateless wrappers of the SDK's own (which it caches by
    scope), so one per name, version and schema is the same tracer. Outside a workflow (every
    span but `RunWorkflow`: the API's, activities', SQL, Redis, HTTP) the replay-safe wrappers
    only ask "in a workflow?" again on each call; those spans go straight to `elsewhere`, an SDK
    provider with the same ids, sampler, resource and processor. Everything else is the wrapped
    provider's."""
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

    class ByPlace(trace.Tracer):
        """Temporal's replay-safe tracer inside a workflow, the SDK's elsewhere."""

        def __init__(self, in_workflows: trace.Tracer, outside: trace.Tracer) -> None:
            self._in_workflows, self._outside = in_workflows, outside

        def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
            tracer = self._in_workflows if workflow.in_workflow() else self._outside
            return tracer.start_span(*args, **kwargs)

        def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
            tracer = self._in_workflows if workflow.in_workflow() else self._outside
            return tracer.start_as_current_span(*args, **kwargs)

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
            key = (instrumenting_module_name, instrumenting_library_version, schema_url)
            if attributes is not None:  # attributes are part of the scope, and unhashable
                return ByPlace(
                    inner.get_tracer(*key, attributes), elsewhere.get_tracer(*key, attributes)
                )
            tracer = self._tracers.get(key)
            if tracer is None:
                made = ByPlace(inner.get_tracer(*key), elsewhere.get_tracer(*key))
                tracer = self._tracers.setdefault(key, made)
            return tracer

        def add_span_processor(self, span_processor: Any) -> None:
            inner.add_span_processor(span_processor)
            elsewhere.add_span_processor(span_processor)

        # Both providers hold the one shared processor: the inner one's calls reach it.
        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

        def id_generator(self) -> Any:
            return inner.id_generator()

        def __getattr__(self, name: str) -> Any:  # anything a later SDK adds
            return getattr(inner, name)

    return TracersMadeOnce()


def parent_based_sampler(ratio: float) -> Sampler:
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
