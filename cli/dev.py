"""`vortex dev`: the whole platform on embedded services, state kept under `.vortex/`,
supervised (see cli/supervisor.py)."""

from __future__ import annotations

import asyncio

import httpx

from api.codec.auth import ops_token
from cli.codec_server import codec_server_url, run_codec_server
from cli.demo import seed_demo
from cli.legacy import run_legacy
from cli.rail import run_rail
from cli.runtime import run_api, run_workers
from cli.supervisor import PID_DIR, Supervisor
from core.embedded import EmbeddedPostgres, EmbeddedRedis
from core.logging import get_logger
from core.settings import Settings
from models.migrate import upgrade_to_head_async
from temporal.client import connect_for
from temporal.devserver import DevServerProcess
from temporal.metrics import worker_runtime
from temporal.schedules import apply_schedules

log = get_logger("vortex.dev")


async def run_dev(
    settings: Settings, stop: asyncio.Event, *, demo: bool = False, legacy: bool = False
) -> None:
    """Bring everything up (seeding the demo customer if `demo`), print the URLs, keep it all
    running until `stop`, then stop the services and the servers in order."""
    supervisor = Supervisor(stop)
    running = asyncio.create_task(_bring_up(settings, supervisor, demo=demo, legacy=legacy))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # only a failure at start ends it before `stop`
    finally:
        running.cancel()
        stopping.cancel()
        await asyncio.gather(running, return_exceptions=True)
        log.info("stopping the services and embedded servers")
        await supervisor.shutdown()


async def _bring_up(
    settings: Settings, supervisor: Supervisor, *, demo: bool, legacy: bool = False
) -> None:
    state = settings.state_dir.resolve()
    pid_dir = state / PID_DIR
    overrides: dict[str, object] = {}
    temporal_ui = not settings.temporal_address
    if not settings.database_url:
        pg = EmbeddedPostgres(
            state / "postgres",
            settings.embedded_postgres_port,
            fsync=settings.embedded_postgres_fsync,
            pid_dir=pid_dir,
        )
        await supervisor.start(pg)
        overrides["database_url"] = pg.url
    if not settings.redis_url:
        redis = EmbeddedRedis(state / "redis", settings.embedded_redis_port, pid_dir=pid_dir)
        await supervisor.start(redis)
        overrides["redis_url"] = redis.url
    if not settings.temporal_address:
        temporal = DevServerProcess(
            port=settings.embedded_temporal_port,
            ui_port=settings.embedded_temporal_ui_port,
            db_file=state / "temporal.sqlite",
            log_file=state / "temporal.log",
            pid_dir=pid_dir,
            codec_endpoint=codec_server_url(settings),
        )
        await supervisor.start(temporal)
        overrides["temporal_address"] = settings.effective_temporal_address
        overrides["temporal_ui_origins"] = _with_embedded_ui(settings)
    settings = settings.model_copy(update=overrides)
    await upgrade_to_head_async(settings.effective_database_url)
    client = await connect_for(settings, runtime=worker_runtime(settings))  # runs the workers
    for schedule_id, outcome in await apply_schedules(client, settings):
        log.info("schedule applied", schedule_id=schedule_id, outcome=outcome)
    supervisor.run("workers", lambda stop: run_workers(settings, stop, client))
    supervisor.run("api", lambda stop: run_api(settings, stop, client))
    supervisor.run("rail", lambda stop: run_rail(settings, stop))
    supervisor.run("codec-server", lambda stop: run_codec_server(settings, stop))
    if legacy:
        from cli.gateway import serve as serve_gateway

        supervisor.run("legacy", lambda stop: run_legacy(settings, stop))
        # the strangler-fig gateway in front of both (routes: `vortex gateway routes ...`)
        host = settings.api_host
        routed = settings.model_copy(
            update={
                "gateway_legacy_url": f"http://{host}:{settings.legacy_port}",
                "gateway_new_url": f"http://{host}:{settings.api_port}",
            }
        )
        supervisor.run("gateway", lambda stop: serve_gateway(routed, stop))
    _print_urls(settings, temporal_ui=temporal_ui)
    if legacy:
        print(
            f"  Legacy monolith http://{settings.api_host}:{settings.legacy_port}  (simulator; "
            "`vortex legacy seed --users N`)\n"
            f"  Gateway        http://{settings.api_host}:{settings.gateway_port}  (legacy and "
            "new behind one address; `vortex gateway routes list`)",
            flush=True,
        )
    if demo:
        await _seed_when_up(settings, supervisor.stop)
    await supervisor.stop.wait()


def _with_embedded_ui(settings: Settings) -> list[str]:
    """The configured UI origins plus the embedded UI's, under both names a browser may use."""
    port = settings.embedded_temporal_ui_port
    embedded = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    return list(dict.fromkeys([*settings.temporal_ui_origins, *embedded]))


async def _seed_when_up(settings: Settings, stop: asyncio.Event) -> None:
    """Seed the demo customer once the API answers: its card history goes through the API's
    signed processor feed. A failure is logged; the platform keeps running."""
    base_url = f"http://{settings.api_host}:{settings.api_port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        while not stop.is_set():
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        else:
            return
        try:
            credentials = await seed_demo(settings, http)
        except Exception:
            log.exception("demo seeding failed")
            return
    print(credentials.describe(), flush=True)


def _print_urls(settings: Settings, *, temporal_ui: bool) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    lines = [
        "VortexCore is up:",
        f"  API            {api}",
        f"  OpenAPI docs   {api}/docs",
        f"  Health/ready   {api}/health  {api}/ready",
        f"  Metrics        {api}/metrics",
        f"  Temporal       {settings.effective_temporal_address}",
        f"  Rail simulator {settings.rail_url}  (payment rail stand-in, signed webhooks)",
    ]
    if temporal_ui:
        lines.append(f"  Temporal UI    http://127.0.0.1:{settings.embedded_temporal_ui_port}")
    codec = codec_server_url(settings)
    lines.append(f"  Codec server   {codec}  (staff: log in at {codec}/login, then tick")
    lines.append('                 "Include cross-origin credentials" in the UI\'s codec settings)')
    if settings.codec_server_token is not None:  # a configured secret is never printed
        lines.append("  Ops token      VORTEX_CODEC_SERVER_TOKEN")
    elif settings.environment == "development":  # derived: it opens only the codec server
        lines.append(f"  Ops token      {ops_token(settings)}")
    lines += [
        f"  PostgreSQL     {settings.effective_database_url}",
        f"  Redis          {settings.effective_redis_url}",
        f"  State dir      {settings.state_dir.resolve()}",
        "Press Ctrl-C to stop everything.",
    ]
    print("\n".join(lines), flush=True)
