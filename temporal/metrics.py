"""The Temporal SDK's own metrics of a worker process, on their own Prometheus port.

The SDK's core (Rust) serves them itself once its `Runtime` is built with a `PrometheusConfig`;
the runtime must exist before the worker's client connects. Names are the SDK's, unchanged
(`temporal_request`, `temporal_workflow_task_execution_latency`, ... in milliseconds, counters
without `_total`), so Temporal's published SDK dashboards work as they are. The business metrics
of the same process (core/metrics.py) are served by prometheus_client on another port: the Rust
exporter owns its socket and cannot serve a Python registry.
"""

from __future__ import annotations

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)


def worker_runtime(settings: Settings) -> Runtime | None:
    """A runtime serving SDK metrics on `worker_metrics_port` (None: the port is 0, or it cannot
    be bound; then the SDK's default runtime is used and the worker runs without them)."""
    port = settings.worker_metrics_port
    if not port:
        return None
    address = f"{settings.worker_metrics_host}:{port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except Exception as exc:  # a worker without metrics beats no worker: say so loudly
        log.error("temporal SDK metrics not served", address=address, error=str(exc))
        return None
