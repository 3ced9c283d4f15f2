"""Temporal client construction: every client uses the project's data converter (pydantic
payloads, encrypted by temporal/codec.py)."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from core.settings import Settings
from temporal.codec import codec_for
from temporal.tracing import temporal_plugins


def data_converter(settings: Settings) -> DataConverter:
    """The one data converter of every client, worker and replayer: pydantic payloads through
    the AES-GCM codec; failure messages and stack traces are encoded too (they can name
    ids), except when encryption is off (then they stay as the SDK writes them)."""
    failures = (
        DefaultFailureConverterWithEncodedAttributes
        if settings.payload_encryption
        else pydantic_data_converter.failure_converter_class
    )
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=codec_for(settings), failure_converter_class=failures
    )


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
    address: str,
    namespace: str = "default",
    *,
    converter: DataConverter,
    retry_seconds: float | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """Connect to a Temporal frontend with the project's data converter (required, so no
    client can forget the codec); `retry_seconds` bounds the retries of each call (the API's
    client), None keeps the SDK's default. `runtime` carries a worker's SDK metrics
    (temporal/metrics.py); with tracing on, the client (and its workers) get the tracing plugin."""
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=converter,
        retry_config=fail_fast_retry(retry_seconds) if retry_seconds else None,
        plugins=temporal_plugins(),
        runtime=runtime,
    )


async def connect_for(
    settings: Settings, *, retry_seconds: float | None = None, runtime: Runtime | None = None
) -> Client:
    """A client of the configured Temporal frontend and namespace with the settings' converter."""
    return await connect_temporal(
        settings.effective_temporal_address,
        settings.temporal_namespace,
        converter=data_converter(settings),
        retry_seconds=retry_seconds,
        runtime=runtime,
    )
