"""A pool of keep-alive HTTP/1.1 connections to one upstream origin (`gateway/http1.py`).

At most `limit` connections are open at once; a request at the limit waits, within the connect
timeout, for one to come back. An idle connection is taken most-recently-used first, and one the
upstream closed while it was idle, or idle past the keep-alive time, is dropped, not used.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from gateway.http1 import Connection, NotConnected, Origin


class ConnectionPool:
    """Keep-alive connections to one origin, at most `limit` open at once."""

    def __init__(
        self,
        origin: Origin,
        *,
        connect_timeout: float,
        read_timeout: float,
        limit: int,
        keepalive: float = 30.0,
    ) -> None:
        self.origin = origin
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._limit = limit
        self._keepalive = keepalive
        self._idle: list[Connection] = []  # the most recently used last: its socket is warmest
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ssl = ssl.create_default_context() if origin.scheme == "https" else None
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open now, idle or busy (tests, ops)."""
        return self._open

    async def acquire(self) -> Connection:
        """An idle connection, or a new one; waits (within the connect timeout) at the limit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        while True:
            now = loop.time()
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and now - conn.idle_since < self._keepalive:
                    return conn
                self._discard(conn)
            if self._closed:
                raise NotConnected("the pool is closed", timed_out=False)
            if self._open < self._limit:
                return await self._connect(deadline - now)
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(deadline - loop.time(), 0.0))
            except TimeoutError:
                raise NotConnected("no connection came free in time", timed_out=True) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self, within: float) -> Connection:
        loop = asyncio.get_running_loop()
        self._open += 1
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Connection(loop, self._read_timeout),
                    self.origin.host,
                    self.origin.port,
                    ssl=self._ssl,
                    server_hostname=self.origin.host if self._ssl else None,
                ),
                max(within, 0.0),
            )
        except TimeoutError:
            self._lost()
            raise NotConnected("no connection in time", timed_out=True) from None
        except OSError as exc:
            self._lost()
            raise NotConnected(f"{type(exc).__name__}: {exc}", timed_out=False) from exc
        except BaseException:
            self._lost()
            raise
        return conn

    def release(self, conn: Connection) -> None:
        """Take a connection back after its exchange: kept if it can carry another, else
        closed."""
        reusable = conn.reusable and not self._closed
        conn.finish()
        if reusable:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.append(conn)
            self._wake_one()
        else:
            self._discard(conn)

    def _discard(self, conn: Connection) -> None:
        conn.close()
        self._lost()

    def _lost(self) -> None:
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the idle connections; busy ones close when released."""
        self._closed = True
        while self._idle:
            self._discard(self._idle.pop())
        await asyncio.sleep(0)  # let the transports close
