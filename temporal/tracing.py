"""The Temporal side of tracing: the SDK's OpenTelemetry plugin on every client (decision 94).

The plugin (`temporalio.contrib.opentelemetry`) spans each client call, workflow run and activity
run, and carries the trace context in Temporal headers. One change: inside a workflow, starting
an activity makes no span of its own. The plugin's `StartActivity` span there lasts no time (it
ends as soon as the command is queued), says nothing the activity's `RunActivity` span does not,
and a span made inside the sandbox costs several times one made outside: while a workflow
activation runs, the sandbox swaps `isinstance` and `__import__` for Python-level wrappers in
every thread, and a span is a few hundred such calls. The activity's span hangs from the
workflow's instead. Context propagation, and every other span, stay the plugin's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.tracing import tracing_enabled

if TYPE_CHECKING:
    from temporalio.plugin import SimplePlugin


def temporal_plugins() -> list[SimplePlugin]:
    """The plugins of a Temporal client: OpenTelemetry's when tracing is on (client calls,
    workflows, activities and local activities get spans; workers inherit the plugin)."""
    if not tracing_enabled():
        return []
    return [_plugin()]


def _plugin() -> SimplePlugin:
    # Imported only when tracing is on: with it off, nothing of OpenTelemetry's SDK is loaded.
    import temporalio.worker
    from temporalio.contrib.opentelemetry import OpenTelemetryInterceptor, OpenTelemetryPlugin
    from temporalio.contrib.opentelemetry._otel_interceptor import (
        _context_to_headers,
        _TracingWorkflowInboundInterceptor,
        _TracingWorkflowOutboundInterceptor,
    )

    class Outbound(_TracingWorkflowOutboundInterceptor):
        """The plugin's workflow outbound interceptor, without the zero-length start spans."""

        def start_activity(
            self, input: temporalio.worker.StartActivityInput
        ) -> temporalio.workflow.ActivityHandle[Any]:
            input.headers = _context_to_headers(input.headers)
            return self.next.start_activity(input)

        def start_local_activity(
            self, input: temporalio.worker.StartLocalActivityInput
        ) -> temporalio.workflow.ActivityHandle[Any]:
            input.headers = _context_to_headers(input.headers)
            return self.next.start_local_activity(input)

    class Interceptor(OpenTelemetryInterceptor):
        def workflow_interceptor_class(
            self, input: temporalio.worker.WorkflowInterceptorClassInput
        ) -> type[_TracingWorkflowInboundInterceptor]:
            plugins_own = super().workflow_interceptor_class(input)

            class Inbound(plugins_own):  # type: ignore[valid-type,misc]
                def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
                    temporalio.worker.WorkflowInboundInterceptor.init(
                        self, Outbound(outbound, add_temporal_spans=True)
                    )

            return Inbound

    plugin = OpenTelemetryPlugin(add_temporal_spans=True)  # keeps its sandbox passthrough
    plugin.interceptors = [Interceptor(add_temporal_spans=True)]
    return plugin
