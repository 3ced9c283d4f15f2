"""The LLM client's lifetime: collecting it leaves nothing behind on the running loop."""

from __future__ import annotations

import asyncio
import gc

from activities.ai.llm import LlmClient


async def test_a_collected_client_schedules_nothing_on_the_running_loop() -> None:
    """The SDK's wrapper client would schedule `aclose()` from its finalizer on whatever loop
    runs when it is collected (inside a workflow activation: a destroyed pending task)."""
    before = len(asyncio.all_tasks())
    client = LlmClient(
        base_url="http://127.0.0.1:9/v1", api_key="k", model="m", timeout_seconds=1.0
    )
    assert client.remote
    del client
    gc.collect()
    assert len(asyncio.all_tasks()) == before
