"""Activity option presets: how long a step may take and how it is retried.

Database steps are short transactions retried quickly; external calls (rail, email, LLM) run on
their own queue, heartbeat and back off for longer. A workflow passes the timeout its input
carries (from `VORTEX_DB_ACTIVITY_TIMEOUT_SECONDS`), so tests and ops can shorten it.

Every policy has a finite budget (`maximum_attempts`, or a `schedule_to_close_timeout` where a
workflow sets its own): a step that keeps failing ends, and its workflow reaches its failed
state, instead of retrying forever. The budgets outlast an ordinary outage (a database restart,
a failover: about 20 minutes for a database step, about 10 for an external call), because a
failure that retrying cannot fix does not use them: business rejections are non-retryable
`ApplicationError`s, and so is a database refusing the input itself (`temporal.deterministic`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy

DB_ACTIVITY_TIMEOUT = timedelta(seconds=30)
EXTERNAL_ACTIVITY_TIMEOUT = timedelta(seconds=60)

DB_MAX_ATTEMPTS = 120  # 0.2 s doubling to 10 s: about 20 minutes of retries
EXTERNAL_MAX_ATTEMPTS = 15  # 1 s doubling to 60 s: about 10 minutes of retries

DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=DB_MAX_ATTEMPTS,
)
EXTERNAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=EXTERNAL_MAX_ATTEMPTS,
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
