"""The streaming forwarder: one connection pool per upstream, timeouts, a careful retry.

Bodies stream both ways (the request body is pulled from the ASGI `receive` as it is sent
upstream, the response body is relayed chunk by chunk), so a large body is never held whole.
Retry rule: only a request that is safe to repeat (GET, HEAD, OPTIONS, PUT, DELETE, or any
request with an Idempotency-Key) and only when the upstream certainly did not act on it (no
connection, or the connection dropped before any of the body was read and before any answer),
once. A POST or PATCH without a key is never repeated.

The client is `gateway/http1.py` (decision 88; aiohttp before it, decision 80): it sends only
what the caller sent plus the forwarding headers (no cookie jar, no User-Agent, Accept or
Accept-Encoding of its own), never decompresses, never follows a redirect and never reads a
proxy from the environment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.headers import RawHeaders
from gateway.http1 import BadAnswer, Connection, Dropped, NotConnected, Origin, request_head
from gateway.upstream_pool import ConnectionPool

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

Receive = Any  # the ASGI receive callable


class ClientGone(Exception):
    """The client disconnected while its request body was being forwarded."""


class UpstreamError(Exception):
    """The upstream failed this request; the subclass says how."""


class UpstreamTimeout(UpstreamError):
    """No connection, answer or next chunk came within its timeout."""


class UpstreamUnreachable(UpstreamError):
    """The upstream could not be reached, or broke the exchange before answering."""


class UpstreamBroke(UpstreamError):
    """The upstream failed in the middle of its answer's body."""


class RequestBody:
    """The ASGI request body as a re-creatable stream, remembering whether it was touched."""

    def __init__(self, receive: Receive, *, present: bool) -> None:
        self._receive = receive
        self.present = present
        self.started = False
        self.gone = False  # the client disconnected while the body was being read

    async def stream(self) -> AsyncIterator[bytes]:
        """The body chunks as they arrive from the client."""
        self.started = True
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                raise ClientGone
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


def may_retry(method: str, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether a request may be sent a second time after a failure that left it unprocessed."""
    if method in IDEMPOTENT_METHODS:
        return True
    return any(n.lower() == b"idempotency-key" and v for n, v in headers)


@dataclass(slots=True)
class UpstreamAnswer:
    """The upstream's answer with its body not yet read; `close()` it exactly once."""

    status: int
    raw_headers: RawHeaders
    content_type: str
    _conn: Connection
    _pool: ConnectionPool

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (transfer coding removed, content coding kept)."""
        while True:
            try:
                chunk = await self._conn.next_chunk()
            except TimeoutError as exc:
                raise UpstreamBroke("no more of the answer within the read timeout") from exc
            except BadAnswer as exc:
                raise UpstreamBroke(str(exc)) from exc
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        """Give the connection back to the pool (or drop it if the body was not all read)."""
        self._pool.release(self._conn)


@dataclass(slots=True)
class Upstream:
    """One side behind the gateway: its origin and its connection pool."""

    name: str
    pool: ConnectionPool
    attempts: int = 0  # requests sent (retries included), for ops and tests

    @classmethod
    def create(
        cls, name: str, base_url: str, *, connect: float, read: float, max_connections: int
    ) -> Upstream:
        """A pool with the gateway's timeouts: connect (and waiting for a pooled connection),
        and read (between bytes of the answer)."""
        origin = Origin.parse(base_url)
        pool = ConnectionPool(
            origin, connect_timeout=connect, read_timeout=read, limit=max_connections
        )
        return cls(name, pool)

    async def open(
        self,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: RawHeaders,
        body: RequestBody | None,
        *,
        retry: bool,
    ) -> UpstreamAnswer:
        """Send the request; its answer with the body not yet read. Raises `ClientGone`,
        `UpstreamTimeout` or `UpstreamUnreachable`."""
        streamed = body is not None and body.present
        chunked = streamed and not any(n.lower() == b"content-length" for n, _ in headers)
        head = request_head(self.pool.origin, method, raw_path, query, headers, chunked=chunked)
        for attempt in (1, 2):
            self.attempts += 1
            untouched = body is None or not body.started
            try:
                conn = await self.pool.acquire()
            except NotConnected as exc:
                if attempt == 1 and retry and untouched:
                    continue
                if exc.timed_out:
                    raise UpstreamTimeout(str(exc)) from exc
                raise UpstreamUnreachable(str(exc)) from exc
            try:
                conn.send_head(head, head_only=method == "HEAD")
                whole = True
                if streamed:
                    assert body is not None
                    whole = await conn.send_body(body.stream(), chunked=chunked)
                conn.sent(whole=whole)
                await conn.answer_head()
            except Dropped as exc:
                self.pool.release(conn)
                if body is not None and body.gone:
                    raise ClientGone from exc
                if attempt == 1 and retry and (body is None or not body.started):
                    continue
                raise UpstreamUnreachable(f"dropped: {exc}") from exc
            except TimeoutError as exc:  # the answer did not start within the read timeout
                self.pool.release(conn)
                raise UpstreamTimeout("no answer in time") from exc
            except BadAnswer as exc:
                self.pool.release(conn)
                raise UpstreamUnreachable(str(exc)) from exc
            except BaseException:  # the client left (ClientGone), or this task was cancelled
                self.pool.release(conn)
                raise
            return UpstreamAnswer(
                conn.status, conn.headers, _content_type(conn.headers), conn, self.pool
            )
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.pool.close()


def _content_type(headers: RawHeaders) -> str:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.decode("latin-1")
    return ""
