"""Run `vortex ...` as a real subprocess, as ops would."""

from __future__ import annotations

import asyncio
import os
import sys


async def run_vortex(variables: dict[str, str], *args: str) -> tuple[int, str]:
    """`python -m cli.main <args>` with these VORTEX_* variables; its exit code and output."""
    env = os.environ | variables | {"VORTEX_LOG_LEVEL": "WARNING"}
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
