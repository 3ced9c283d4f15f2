"""Retry policies and timeouts shared by workflows (task queue names live in settings)."""

from __future__ import annotations

from datetime import timedelta

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
