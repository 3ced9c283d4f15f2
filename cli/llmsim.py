"""`vortex llmsim`: the bundled OpenAI-compatible simulator, to try the LLM seam by hand
(`VORTEX_LLM_BASE_URL=http://127.0.0.1:<port>/v1`). Tests start it themselves."""

from __future__ import annotations

import asyncio

from cli.runtime import _until_stop_or_failure
from core.logging import get_logger
from core.settings import Settings
from llmsim.app import create_llm_app
from railsim.server import serve_app

log = get_logger("vortex.llmsim")


async def run_llmsim(settings: Settings, stop: asyncio.Event, port: int) -> None:
    """Serve the simulator until `stop` is set (binds the API's host)."""
    async with serve_app(create_llm_app(), host=settings.api_host, port=port) as served:
        log.info("llm simulator ready", base_url=served.url + "/v1")
        await _until_stop_or_failure(stop, [served.task])
