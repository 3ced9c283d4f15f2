"""The gateway's upstream client: HTTP/1.1 connections whose answers llhttp parses.

A forward is a request head written from the caller's (already parsed and checked) headers,
the body streamed after it, and the answer parsed by httptools (llhttp, the parser uvicorn
serves with), its body handed on chunk by chunk. aiohttp's client did the same at about four
times the CPU per request (decision 88): its request, URL, header and timer objects are built
for a general-purpose client, and a proxy's requests need none of them. The framing of
answers (chunked coding, lengths, keep-alive) stays llhttp's; this module owns one
connection's exchange, its read timeout and the request head (`gateway/upstream_pool.py` keeps
the connections).

What a caller sees, so that `gateway/proxy.py` can apply its retry rule:
- `NotConnected`: no connection was made (refused, unreachable, or none came free in time);
- `Dropped`: the connection closed before any byte of the answer;
- `TimeoutError`: no byte of the answer (or of its next chunk) within the read timeout;
- `BadAnswer`: the answer broke HTTP/1.1, or stopped in the middle.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

RawHeaders = list[tuple[bytes, bytes]]

# Reading pauses while this much of an answer waits for the client: the gateway holds at most
# about this much of a body per request, however large the body and however slow the client.
READ_HIGH_WATER = 256 * 1024
MAX_HEAD_BYTES = 64 * 1024  # an answer's status line and headers; more is a broken upstream
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class NotConnected(Exception):
    """No connection to the upstream: the request was not sent."""

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


class Dropped(Exception):
    """The connection closed before any byte of the answer arrived."""


class BadAnswer(Exception):
    """The answer broke HTTP/1.1 framing, or the connection ended in its middle."""


class _ReadTimeout(TimeoutError):
    """No byte of the answer within the read timeout."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an upstream listens, from its base URL (`scheme://host:port/prefix`)."""

    scheme: str
    host: str
    port: int
    prefix: str  # a path prefix put before every request's path, no trailing slash
    host_header: bytes  # `host[:port]`, the port left out when it is the scheme's default

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        """The origin of `base_url`; a query or fragment in it is ignored."""
        parts = urlsplit(base_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"an upstream URL must be http(s)://host[:port][/prefix]: {base_url}")
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
        if port != _DEFAULT_PORTS[parts.scheme]:
            shown += f":{port}"
        return cls(parts.scheme, host, port, parts.path.rstrip("/"), shown.encode("ascii"))


def request_head(
    origin: Origin,
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    chunked: bool,
) -> bytes:
    """The request line and headers for `origin`; `chunked` adds chunked transfer coding.

    The caller's headers come from uvicorn's parser (no CR or LF in them), but a value made
    by the gateway could carry one; a line break would split the request, so it is refused."""
    parts = [
        method.encode("ascii"),
        b" ",
        origin.prefix.encode("ascii"),
        raw_path,
        b"?" + query if query else b"",
        b" HTTP/1.1\r\nhost: ",
        origin.host_header,
        b"\r\n",
    ]
    for name, value in headers:
        if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
            raise ValueError(f"a line break in header {name!r}")
        parts += (name, b": ", value, b"\r\n")
    if chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    elif method in _BODY_METHODS and not any(n.lower() == b"content-length" for n, _ in headers):
        parts.append(b"content-length: 0\r\n")  # some servers refuse a body method without one
    parts.append(b"\r\n")
    return b"".join(parts)


class Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time, the answer parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None  # None between exchanges
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: RawHeaders = []
        self._head_bytes = 0
        self._head_done = False
        self._head_only = False  # a HEAD request: the answer has no body whatever it says
        self._until_eof = False  # the body runs to the end of the connection
        self._keep_alive = False  # the answer lets the connection carry another exchange
        self._complete = False
        self._got_bytes = False
        self._sent_all = False
        self._body_whole = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self._writable: asyncio.Future[None] | None = None

    # -- the exchange, as the proxy drives it ---------------------------------------------

    def send_head(self, head: bytes, *, head_only: bool) -> None:
        """Start an exchange: write the request head."""
        self._reset()
        self._head_only = head_only
        self._parser = httptools.HttpResponseParser(self)
        self._write(head)

    async def send_body(self, chunks: AsyncIterator[bytes], *, chunked: bool) -> bool:
        """Stream the request body; whether all of it went (the upstream may answer or leave
        before the end: an early 4xx needs no more of it)."""
        async for chunk in chunks:
            if self._head_done or self._error is not None or self.closed:
                return False
            if chunked:
                self._write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                self._write(chunk)
            if self._writable is not None:
                await self._drain()
        if self.closed:
            return False
        if chunked:
            self._write(b"0\r\n\r\n")
        return True

    def sent(self, *, whole: bool) -> None:
        """The request is sent (`whole`: with all its body): from now on a silent upstream
        times out."""
        self._sent_all = True
        self._body_whole = whole
        if not self._complete and self._error is None and not self._reading_paused:
            self._arm()

    async def answer_head(self) -> None:
        """Wait for the answer's status and headers (`status`, `headers`)."""
        while not self._head_done:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def next_chunk(self) -> bytes | None:
        """The next part of the answer's body (what arrived so far), or None at its end."""
        while not self._chunks:
            if self._complete:
                return None
            if self._error is not None:
                raise (
                    self._error
                    if isinstance(self._error, TimeoutError)
                    else BadAnswer(str(self._error))
                )
            await self._wait()
        chunk = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._reading_paused and self._transport is not None and not self.closed:
            self._reading_paused = False
            self._transport.resume_reading()
            self._arm()
        return chunk

    @property
    def reusable(self) -> bool:
        """Whether the exchange ended cleanly on a connection that may carry the next one."""
        return (
            self._complete
            and self._body_whole
            and not self._head_only
            and not self._until_eof
            and not self.closed
            and self._error is None
            and self._keep_alive
        )

    def finish(self) -> None:
        """The exchange is over (whatever its state): stop its timer."""
        self._disarm()
        self._parser = None

    def close(self) -> None:
        """Close the connection (a half-read answer cannot be resumed by the next exchange)."""
        self.closed = True
        self._disarm()
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._parser is None or self._complete:  # nothing was asked: not a usable peer
            self.close()
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadAnswer(f"the answer broke HTTP/1.1: {exc}"))
            self.close()
            return
        if not self._complete and not self._reading_paused:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
        if self._parser is None or self._complete:
            return
        if self._head_done and self._until_eof and exc is None:
            self._complete = True  # a body without length or chunking ends with the connection
            self._wake()
        elif not self._got_bytes:
            self._fail(Dropped(type(exc).__name__ if exc else "closed before answering"))
        else:
            self._fail(BadAnswer("the connection closed in the middle of the answer"))
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # bytes after the whole answer: nothing asked for them
            raise BadAnswer("the upstream sent more than its answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise BadAnswer("the answer's headers are too large")
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise BadAnswer("the upstream switched protocols")
            self.headers, self._head_bytes = [], 0  # an interim answer (100, 103): the next
            return
        self.status = status
        self._head_done = True
        self._keep_alive = self._parser.should_keep_alive()  # read now: llhttp resets it after
        if self._head_only:
            self._complete = True  # no body follows an answer to HEAD; llhttp cannot know
        elif status not in (204, 304):
            names = {n.lower() for n, _ in self.headers}
            self._until_eof = b"content-length" not in names and b"transfer-encoding" not in names
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._head_only:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_HIGH_WATER and not self._reading_paused:
            assert self._transport is not None
            self._reading_paused = True
            self._transport.pause_reading()
            self._disarm()  # a slow client is not a silent upstream
        self._wake()

    def on_message_complete(self) -> None:
        if self._head_done:  # not the end of an interim answer
            self._complete = True
            self._disarm()
            self._wake()

    # -- plumbing -------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._transport is None or self.closed:
            raise Dropped("the connection is closed")
        self._transport.write(data)

    async def _drain(self) -> None:
        writable = self._writable
        if writable is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(writable), self._read_timeout)
        except TimeoutError:
            self._fail(_ReadTimeout("the upstream stopped reading the request body"))
            self.close()
            raise _ReadTimeout("the upstream stopped reading the request body") from None
        if self.closed and not self._head_done:
            raise Dropped("the connection closed while the body was sent")

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _arm(self) -> None:
        if not self._sent_all:
            return  # the upstream is still receiving the body: its silence is expected
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._read_timeout, self._on_timeout)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timeout(self) -> None:
        self._timer = None
        if self._complete or self._parser is None:
            return
        self._fail(_ReadTimeout("no answer within the read timeout"))
        self.close()
