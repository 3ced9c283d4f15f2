"""What makes `vortex dev` a supervisor: one instance per state directory (a lock held for the
process's lifetime), ports checked before anything starts, servers and in-process services
restarted with backoff when they die, and SIGINT/SIGTERM/SIGHUP always ending everything."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn, Protocol

from core.logging import get_logger
from core.processes import ChildProcess, stop_recorded
from core.settings import Settings

log = get_logger("vortex.supervisor")
LOCK_FILE = "dev.lock"
PID_DIR = "pids"  # under the state directory: one pid file per embedded server
POLL_SECONDS = 0.5
SHUTDOWN_GRACE_SECONDS = 60.0  # after this, a stopping `vortex dev` kills what is left


class StartRefused(Exception):
    """Why `vortex dev` will not start, as one line for the person who ran it."""


@contextlib.contextmanager
def dev_guard(settings: Settings) -> Iterator[Path]:
    """Before `vortex dev` starts anything: take the state directory's lock (a second instance
    gets one line and exit 1, touching nothing), stop the children a killed run left behind,
    and check every port (a busy one: one line naming it and its setting, exit 1). Yields the
    pid directory; the lock is held until the block ends."""
    state = settings.state_dir.resolve()
    try:
        lock = hold_state_lock(state)
    except StartRefused as refusal:
        _refuse(refusal)
    with lock:
        stop_recorded(state / PID_DIR)
        try:
            check_ports(settings)
        except StartRefused as refusal:
            _refuse(refusal)
        yield state / PID_DIR


def _refuse(refusal: StartRefused) -> NoReturn:
    print(f"vortex dev: {refusal}", file=sys.stderr, flush=True)
    sys.exit(1)


def hold_state_lock(state_dir: Path) -> IO[str]:
    """Take the state directory's single-instance lock (flock, released by the kernel when this
    process ends however it ends); the returned file must stay open for the process lifetime."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise StartRefused(
            f"another vortex dev (pid {holder}) is running on the state directory {state_dir}; "
            "stop it first, or give this one its own VORTEX_STATE_DIR and ports"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def planned_ports(settings: Settings) -> list[tuple[str, str, int]]:
    """(setting, host, port) of every port `vortex dev` will listen on with these settings."""
    ports = [
        ("VORTEX_API_PORT", settings.api_host, settings.api_port),
        ("VORTEX_RAIL_PORT", settings.api_host, settings.rail_port),
        ("VORTEX_CODEC_SERVER_PORT", settings.codec_server_host, settings.codec_server_port),
    ]
    if not settings.database_url:
        ports.append(
            ("VORTEX_EMBEDDED_POSTGRES_PORT", "127.0.0.1", settings.embedded_postgres_port)
        )
    if not settings.redis_url:
        ports.append(("VORTEX_EMBEDDED_REDIS_PORT", "127.0.0.1", settings.embedded_redis_port))
    if not settings.temporal_address:
        ports.append(
            ("VORTEX_EMBEDDED_TEMPORAL_PORT", "127.0.0.1", settings.embedded_temporal_port)
        )
        ports.append(
            ("VORTEX_EMBEDDED_TEMPORAL_UI_PORT", "127.0.0.1", settings.embedded_temporal_ui_port)
        )
    return ports


def check_ports(settings: Settings) -> None:
    """Refuse to start when a port is taken or two settings name the same port."""
    seen: dict[int, str] = {}
    for setting, host, port in planned_ports(settings):
        if port in seen:
            raise StartRefused(f"{seen[port]} and {setting} are both port {port}; change one")
        seen[port] = setting
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise StartRefused(
                    f"port {port} ({setting}) on {host} is already in use ({exc.strerror}); "
                    f"stop what holds it or set {setting} to a free port"
                ) from None


@dataclass
class Backoff:
    """Restart delays: `initial` seconds, doubling up to `maximum`; back to `initial` once a run
    lasted `healthy_after` seconds."""

    initial: float = 1.0
    maximum: float = 30.0
    healthy_after: float = 60.0
    _current: float = field(default=0.0, init=False)

    def delay(self, ran_seconds: float) -> float:
        """The wait before the next start, given how long the last run lasted."""
        if self._current == 0.0 or ran_seconds >= self.healthy_after:
            self._current = self.initial
        else:
            self._current = min(self._current * 2, self.maximum)
        return self._current


class Supervised(Protocol):
    """A server `vortex dev` runs as a child process (embedded PostgreSQL, Redis, Temporal)."""

    @property
    def child(self) -> ChildProcess:
        """The process to watch."""

    def prepare(self) -> None:
        """Blocking preparation (directories, initdb); runs in a thread."""

    def spawn(self) -> None:
        """Start the process; runs on the event loop's thread, which outlives it."""

    async def ready(self) -> None:
        """Return once it serves; raise if it exits or takes too long."""

    def stop(self) -> None:
        """Stop it (bounded wait, then SIGKILL)."""


Service = Callable[[asyncio.Event], Awaitable[None]]


class Supervisor:
    """Starts servers and in-process services, restarts whichever dies, stops all in order."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self._servers: list[Supervised] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._services: list[asyncio.Task[None]] = []

    async def start(self, server: Supervised) -> None:
        """Start a server (an error here is the caller's) and restart it whenever it exits."""
        self._servers.append(server)
        await _start(server)
        self._watchers.append(asyncio.create_task(self._watch(server)))

    def run(self, name: str, service: Service) -> None:
        """Run an in-process service until `stop`; restart it whenever it fails or returns."""
        self._services.append(asyncio.create_task(self._keep_running(name, service)))

    async def shutdown(self) -> None:
        """Stop the in-process services first, then the servers in reverse start order."""
        self.stop.set()
        await asyncio.gather(*self._services, return_exceptions=True)
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        for server in reversed(self._servers):
            await asyncio.to_thread(server.stop)

    async def _watch(self, server: Supervised) -> None:
        child, backoff = server.child, Backoff()
        started = time.monotonic()
        while True:
            code = await _exited(child)
            died, ran = time.monotonic(), time.monotonic() - started
            log.warning("child exited, restarting it", child=child.name, exit_code=code)
            while True:
                delay = backoff.delay(ran)
                await asyncio.sleep(delay)
                try:
                    await _start(server)
                except Exception as exc:
                    log.warning("restart failed", child=child.name, error=str(exc))
                    ran = 0.0
                    continue
                started = time.monotonic()
                log.warning(
                    "child restarted",
                    child=child.name,
                    pid=child.pid,
                    down_seconds=round(started - died, 1),
                )
                break

    async def _keep_running(self, name: str, service: Service) -> None:
        backoff = Backoff()
        while not self.stop.is_set():
            own_stop = asyncio.Event()  # the service may set its own; ours is only relayed
            relay = asyncio.create_task(_relay(self.stop, own_stop))
            began = time.monotonic()
            error: BaseException | None = None
            try:
                await service(own_stop)
            except Exception as exc:
                error = exc
            finally:
                relay.cancel()
            if self.stop.is_set():
                return
            delay = backoff.delay(time.monotonic() - began)
            log.error(
                "service stopped unexpectedly, restarting it",
                service=name,
                delay_seconds=delay,
                exc_info=error,
            )
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
            except TimeoutError:
                pass
            else:
                return
            log.warning("service restarted", service=name)


STARTUP_ATTEMPTS = 3


async def _start(server: Supervised) -> None:
    """Start a server child. One that exits while starting is started again, up to
    STARTUP_ATTEMPTS times: the Temporal dev server picks random free ports of its own (HTTP
    API, metrics, internal services) and can lose that race to another process. A timeout, or
    the last failure, is raised."""
    await asyncio.to_thread(server.prepare)
    for attempt in range(1, STARTUP_ATTEMPTS + 1):
        server.spawn()
        try:
            await server.ready()
            return
        except RuntimeError as exc:  # the child exited during startup
            await asyncio.to_thread(server.stop)
            if attempt == STARTUP_ATTEMPTS:
                raise
            log.warning("child exited while starting, starting it again", error=str(exc))
        except BaseException:
            await asyncio.to_thread(server.stop)
            raise


async def _exited(child: ChildProcess) -> int:
    while True:
        code = child.exit_code()
        if code is not None:
            return code
        await asyncio.sleep(POLL_SECONDS)


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


def run_until_signal(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, pid_dir: Path
) -> None:
    """Run `main(stop)`; SIGINT, SIGTERM and SIGHUP set `stop`. A second signal, or a shutdown
    longer than SHUTDOWN_GRACE_SECONDS, SIGKILLs every recorded child and exits at once."""

    async def runner() -> None:
        loop, stop = asyncio.get_running_loop(), asyncio.Event()
        requested = threading.Event()

        def on_signal(signum: int, _: FrameType | None) -> None:
            if signum == signal.SIGHUP:
                _detach_from_terminal()
            if requested.is_set():
                _force_exit(pid_dir, f"second {signal.Signals(signum).name} while stopping")
            requested.set()
            _start_watchdog(pid_dir)
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(_stopping, stop, signal.Signals(signum).name)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, on_signal)
        try:
            await main(stop)
        finally:
            if not requested.is_set():
                requested.set()
                _start_watchdog(pid_dir)  # main failed: tear-down must end too
        log.info("stopped cleanly")

    asyncio.run(runner())


def _stopping(stop: asyncio.Event, signal_name: str) -> None:
    log.info("stopping everything", signal=signal_name)
    stop.set()


def _start_watchdog(pid_dir: Path) -> None:
    def expire() -> None:
        time.sleep(SHUTDOWN_GRACE_SECONDS)
        _force_exit(pid_dir, f"shutdown took longer than {SHUTDOWN_GRACE_SECONDS:.0f}s")

    threading.Thread(target=expire, name="shutdown-watchdog", daemon=True).start()


def _force_exit(pid_dir: Path, reason: str) -> None:
    os.write(2, f"vortex dev: {reason}: killing every child now\n".encode())
    stop_recorded(pid_dir, force=True)
    os._exit(1)


def _detach_from_terminal() -> None:
    """After a hang-up the terminal is gone: writing to it would fail, so the rest of the
    shutdown log goes to /dev/null."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if os.isatty(fd):
            os.dup2(devnull, fd)
    os.close(devnull)
