"""Activity option presets: how long a step may take and how it is retried.

Database steps are short transactions retried quickly; external calls (rail, email, LLM) run on
their own queue, heartbeat and back off for longer. A workflow passes the timeout its input
carries (from `VORTEX_DB_ACTIVITY_TIMEOUT_SECONDS`), so tests and ops can shorten it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy

DB_ACTIVITY_TIMEOUT = timedelta(seconds=30)
EXTERNAL_ACTIVITY_TIMEOUT = timedelta(seconds=60)

DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)
EXTERNAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)


class ActivityOptions(TypedDict):
    """Keyword arguments of `workflow.execute_activity*` that every step sets."""

    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy


def db_step(timeout_seconds: float | None = None) -> ActivityOptions:
    """Options of a database step: the input's timeout (or the default) and quick retries."""
    timeout = timedelta(seconds=timeout_seconds) if timeout_seconds else DB_ACTIVITY_TIMEOUT
    return {"start_to_close_timeout": timeout, "retry_policy": DB_RETRY}


def external_call(retry_policy: RetryPolicy = EXTERNAL_RETRY) -> ActivityOptions:
    """Options of a call to an outside system: a longer timeout and backed-off retries."""
    return {"start_to_close_timeout": EXTERNAL_ACTIVITY_TIMEOUT, "retry_policy": retry_policy}
