"""Serve an ASGI app (the simulator, or a test receiver) with uvicorn inside the running loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


class _InProcessServer(uvicorn.Server):
    """uvicorn without its own signal handling: the caller owns Ctrl-C and shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class ServedApp:
    """A running server: its base URL, port and serving task (done = it stopped or crashed)."""

    url: str
    port: int
    task: asyncio.Task[None]
    server: uvicorn.Server
    sock: socket.socket

    async def stop(self) -> None:
        """Ask uvicorn to exit (drains connections, runs lifespan shutdown) and wait for it."""
        self.server.should_exit = True
        await asyncio.gather(self.task, return_exceptions=True)
        self.sock.close()


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets of that proto
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def start_app(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 15.0,
    access_log: bool = False,
) -> ServedApp:
    """Start serving `app` on host:port (0 = any free port); returns once it accepts requests."""
    sock = _bind(host, port)  # bound here: no race for the port, bind errors raise here
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="on",
        access_log=access_log,
        timeout_graceful_shutdown=5,
        # Longer than httpx's 5 s keep-alive expiry: with equal timeouts a client may reuse a
        # pooled connection in the instant the server closes it (ReadError on a retry in CI).
        timeout_keep_alive=30,
    )
    server = _InProcessServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    served = ServedApp(f"http://{host}:{bound_port}", bound_port, task, server, sock)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + startup_timeout
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"server on {host}:{bound_port} stopped during startup")
            if loop.time() > deadline:
                raise TimeoutError(f"server on {host}:{bound_port} did not start")
            await asyncio.sleep(0.01)
    except BaseException:
        await served.stop()
        raise
    return served


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 15.0,
    access_log: bool = False,
) -> AsyncIterator[ServedApp]:
    """Serve `app` on host:port (0 = any free port) until the block exits, lifespan included."""
    served = await start_app(
        app, host=host, port=port, startup_timeout=startup_timeout, access_log=access_log
    )
    try:
        yield served
    finally:
        await served.stop()
