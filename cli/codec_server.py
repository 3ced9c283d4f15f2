"""`vortex codec-server`: decode encrypted payloads for staff in the Temporal UI and CLI."""

from __future__ import annotations

import asyncio

from api.codec.app import Audit, create_codec_app
from api.codec.auth import Staff, StaffCredentials
from cli.runtime import _EmbeddedServer, _serve, _until_stop_or_failure
from core.db import SessionFactory, create_engine, create_session_factory, transaction
from core.http_server import server_config
from core.logging import get_logger
from core.settings import Settings
from models.audit import record_audit
from temporal.codec import codec_for

log = get_logger("vortex.codec_server")


def codec_server_url(settings: Settings) -> str:
    """Where the codec server listens (the Temporal UI's codec endpoint)."""
    return f"http://{settings.codec_server_host}:{settings.codec_server_port}"


def database_audit(sessions: SessionFactory) -> Audit:
    """Audit codec requests in the hash-chained audit log (one row per request)."""

    async def audit(staff: Staff, action: str, count: int, namespace: str) -> None:
        async with transaction(sessions) as session:
            await record_audit(
                session,
                action,
                subject=namespace or None,
                client=f"{staff.name} ({staff.via})",
                details={"payloads": count},
            )

    return audit


async def run_codec_server(settings: Settings, stop: asyncio.Event) -> None:
    """Serve the codec server until `stop` is set."""
    engine = create_engine(settings.effective_database_url, pool_size=2, max_overflow=0)
    app = create_codec_app(
        codec_for(settings),
        StaffCredentials.from_settings(settings),
        settings.temporal_ui_origins,
        audit=database_audit(create_session_factory(engine)),
    )
    config = server_config(
        app, host=settings.codec_server_host, port=settings.codec_server_port, lifespan="off"
    )
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(_serve(server))
    log.info(
        "codec server ready", url=codec_server_url(settings), origins=settings.temporal_ui_origins
    )
    try:
        await _until_stop_or_failure(stop, [serving])
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        await engine.dispose()
