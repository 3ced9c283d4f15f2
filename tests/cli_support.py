"""Run `vortex ...` as a real subprocess, as ops would."""

from __future__ import annotations

import asyncio
import os
import sys

from core.settings import Settings


def cli_variables(settings: Settings) -> dict[str, str]:
    """The VORTEX_* variables that point a `vortex` process at the test's services (the secret
    too: it derives the payload encryption keys the workers use)."""
    return {
        "VORTEX_DATABASE_URL": str(settings.database_url),
        "VORTEX_REDIS_URL": str(settings.redis_url),
        "VORTEX_TEMPORAL_ADDRESS": str(settings.temporal_address),
        "VORTEX_RAIL_URL": settings.rail_url,
        "VORTEX_TASK_QUEUE": settings.task_queue,
        "VORTEX_EXTERNAL_TASK_QUEUE": settings.external_task_queue,
        "VORTEX_SECRET_KEY": settings.secret_key.get_secret_value(),
    }


async def run_vortex(settings: Settings, *args: str) -> tuple[int, str]:
    """`python -m cli.main <args>` against the test's services; its exit code and output."""
    env = os.environ | cli_variables(settings) | {"VORTEX_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return int(proc.returncode or 0), out.decode()
