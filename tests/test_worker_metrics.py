"""A worker process serves the Temporal SDK's metrics on its own port and the business metrics
on another, both scraped over HTTP as Prometheus would."""

from __future__ import annotations

import asyncio

import httpx

from cli.runtime import run_workers
from core.embedded import free_ports
from core.settings import Settings
from tests.rail_support import eventually


async def _scrape(port: int, *wanted: str) -> str | None:
    """The metrics page on `port` once it names everything in `wanted`."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            answer = await client.get(f"http://127.0.0.1:{port}/metrics")
    except httpx.TransportError:
        return None  # not listening yet
    return answer.text if all(name in answer.text for name in wanted) else None


async def test_a_worker_serves_sdk_metrics_and_business_metrics_on_its_ports(
    settings: Settings,
) -> None:
    sdk_port, app_port = free_ports(2)
    worker_settings = settings.model_copy(
        update={
            "worker_metrics_host": "127.0.0.1",
            "worker_metrics_port": sdk_port,
            "worker_app_metrics_port": app_port,
        }
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(worker_settings, stop, relay=False))
    try:
        queue = f'task_queue="{settings.task_queue}"'
        sdk = await eventually(
            lambda: _scrape(sdk_port, "temporal_request", "temporal_num_pollers", queue),
            max_wait=20,
            interval=0.2,
        )
        assert "# TYPE temporal_request counter" in sdk
        business = await eventually(
            lambda: _scrape(app_port, "vortex_ledger_postings_total"), max_wait=5, interval=0.1
        )
        for name in ("vortex_payment_status_changes_total", "vortex_llm_tokens_total"):
            assert f"# TYPE {name} counter" in business
    finally:
        stop.set()
        await running
    # Stopped with the workers: the port is free again.
    assert await _scrape(app_port) is None
