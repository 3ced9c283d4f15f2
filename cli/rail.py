"""`vortex rail`: the payment rail simulator on `rail_port`, calling back our API's webhook."""

from __future__ import annotations

import asyncio

from activities.providers.rail import rail_callback_url
from cli.runtime import _until_stop_or_failure
from core.logging import get_logger
from core.settings import Settings
from railsim.app import create_rail_app
from railsim.models import RailConfig
from railsim.server import serve_app

log = get_logger("vortex.rail")


def rail_config(settings: Settings) -> RailConfig:
    """The simulator's configuration from our settings."""
    return RailConfig(
        webhook_secret=settings.rail_webhook_secret.get_secret_value(),
        callback_url=rail_callback_url(settings.api_public_url),
        settle_delay_seconds=settings.rail_settle_delay_seconds,
        transient_failure_rate=settings.rail_transient_failure_rate,
        reject_rate=settings.rail_reject_rate,
        state_file=settings.state_dir / "railsim.sqlite3",  # kept across restarts
    )


async def run_rail(settings: Settings, stop: asyncio.Event) -> None:
    """Serve the rail simulator until `stop` is set (binds the API's host, port `rail_port`)."""
    config = rail_config(settings)
    app = create_rail_app(config)
    async with serve_app(app, host=settings.api_host, port=settings.rail_port) as served:
        log.info("rail simulator ready", url=served.url, callback_url=config.callback_url)
        await _until_stop_or_failure(stop, [served.task])
