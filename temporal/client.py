"""Temporal client construction: every client uses the pydantic data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig


def fail_fast_retry(seconds: float) -> RetryConfig:
    """Retry a failing call for about `seconds` in all (the SDK's default is about 10 s), so a
    server that is down turns into an error the API can answer as a 503 quickly."""
    return RetryConfig(
        initial_interval_millis=100,
        multiplier=1.5,
        max_interval_millis=1000,
        max_elapsed_time_millis=int(seconds * 1000),
        max_retries=10,
    )


async def connect_temporal(
    address: str, namespace: str = "default", *, retry_seconds: float | None = None
) -> Client:
    """Connect to a Temporal frontend with the project's data converter; `retry_seconds`
    bounds the retries of each call (the API's client), None keeps the SDK's default."""
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=pydantic_data_converter,
        retry_config=fail_fast_retry(retry_seconds) if retry_seconds else None,
    )
