"""The gateway's HTTP/1.1 upstream client against scripted servers on real sockets: framing,
keep-alive, timeouts, broken answers and the pool's limit, on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import uvloop

from gateway.http1 import Origin, request_head
from gateway.proxy import (
    Upstream,
    UpstreamBroke,
    UpstreamTimeout,
    UpstreamUnreachable,
)

OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"


@dataclass
class Script:
    """A raw HTTP server: for each request head it receives, `answer(n)` gives the bytes to
    write and whether to close the connection after (n counts requests, from 0)."""

    answer: Callable[[int], tuple[bytes, bool]]
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    url: str = ""


@contextlib.asynccontextmanager
async def scripted(answer: Callable[[int], tuple[bytes, bool]]) -> AsyncIterator[Script]:
    """Serve `answer` on a free port until the block ends."""
    script = Script(answer)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script.connections += 1
        with contextlib.suppress(Exception):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                script.heads.append(head)
                data, close = script.answer(len(script.heads) - 1)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    script.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield script
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


def upstream(url: str, *, read: float = 2.0, limit: int = 10, connect: float = 1.0) -> Upstream:
    return Upstream.create("test", url, connect=connect, read=read, max_connections=limit)


async def fetch(up: Upstream, method: str = "GET", path: bytes = b"/x") -> tuple[int, bytes]:
    answer = await up.open(method, path, b"", [(b"accept", b"*/*")], None, retry=True)
    try:
        return answer.status, b"".join([chunk async for chunk in answer.chunks()])
    finally:
        answer.close()


async def test_one_keep_alive_connection_carries_successive_requests() -> None:
    async with scripted(lambda n: (OK, False)) as server:
        up = upstream(server.url)
        answers = [await fetch(up) for _ in range(3)]
        await up.aclose()
    assert answers == [(200, b"hello")] * 3
    assert server.connections == 1
    assert server.heads[0].startswith(b"GET /x HTTP/1.1\r\nhost: 127.0.0.1:")


async def test_chunked_answers_are_decoded_and_the_connection_reused() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    )
    async with scripted(lambda n: (chunked, False)) as server:
        up = upstream(server.url)
        first, second = await fetch(up), await fetch(up)
        await up.aclose()
    assert first == second == (200, b"abcdefg")
    assert server.connections == 1


async def test_an_answer_without_length_runs_to_the_close_and_is_not_reused() -> None:
    eof = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end"
    async with scripted(lambda n: (eof, True)) as server:
        up = upstream(server.url)
        answers = [await fetch(up), await fetch(up)]
        await up.aclose()
    assert answers == [(200, b"until the end")] * 2
    assert server.connections == 2


async def test_connection_close_and_http_1_0_answers_are_not_reused() -> None:
    close = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
    old = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with scripted(lambda n: ((close, old)[n % 2], False)) as server:
        up = upstream(server.url)
        answers = [await fetch(up) for _ in range(4)]
        await up.aclose()
    assert answers == [(200, b"ok")] * 4
    assert server.connections == 4


async def test_head_204_304_and_interim_answers_have_no_body_and_do_not_hang() -> None:
    answers = {
        0: b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",  # HEAD: a length, no body
        1: b"HTTP/1.1 204 No Content\r\n\r\n",
        2: b"HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n",
        3: b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n" + OK,
    }
    async with scripted(lambda n: (answers[n], False)) as server:
        up = upstream(server.url, read=1.0)
        head = await asyncio.wait_for(fetch(up, "HEAD"), 3)
        no_content = await asyncio.wait_for(fetch(up), 3)
        not_modified = await asyncio.wait_for(fetch(up), 3)
        hinted = await up.open("GET", b"/x", b"", [], None, retry=False)
        hinted_body = b"".join([chunk async for chunk in hinted.chunks()])
        hinted.close()
        await up.aclose()
    assert head == (200, b"")
    assert no_content == (204, b"")
    assert not_modified == (304, b"")
    assert (hinted.status, hinted_body) == (200, b"hello")
    assert all(name != b"link" for name, _ in hinted.raw_headers)  # the interim one's


async def test_a_broken_answer_is_unreachable_and_a_cut_body_is_broke() -> None:
    async with scripted(lambda n: (b"SMTP ready\r\n\r\n", True)) as garbage:
        up = upstream(garbage.url)
        with pytest.raises(UpstreamUnreachable):
            await fetch(up)
        await up.aclose()
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part"
    async with scripted(lambda n: (cut, True)) as server:
        up = upstream(server.url)
        answer = await up.open("GET", b"/x", b"", [], None, retry=False)
        with pytest.raises(UpstreamBroke):
            async for _ in answer.chunks():
                pass
        answer.close()
        assert up.pool.open_connections == 0
        await up.aclose()


async def test_a_silent_answer_times_out_before_and_in_the_middle_of_the_body() -> None:
    head_only = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nstart"
    async with scripted(lambda n: (b"" if n == 0 else head_only, False)) as server:
        up = upstream(server.url, read=0.3)
        with pytest.raises(UpstreamTimeout):
            await fetch(up)
        answer = await up.open("GET", b"/x", b"", [], None, retry=False)
        with pytest.raises(UpstreamBroke, match="read timeout"):
            async for _ in answer.chunks():
                pass
        answer.close()
        await up.aclose()
    assert len(server.heads) == 2  # the timed-out GET was not sent again


async def test_at_the_limit_a_request_waits_for_a_free_connection_within_the_connect_timeout() -> (
    None
):
    async with scripted(lambda n: (OK, False)) as server:
        up = upstream(server.url, limit=1, connect=0.3)
        held = await up.open("GET", b"/x", b"", [], None, retry=False)  # its body not yet read
        with pytest.raises(UpstreamTimeout, match="came free"):
            await fetch(up)
        waiting = asyncio.create_task(fetch(up))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        held.close()  # the connection goes back to the pool, to the waiting request
        assert await waiting == (200, b"hello")
        assert up.pool.open_connections == 1
        await up.aclose()
    assert server.connections == 1


async def test_an_idle_connection_the_upstream_closed_is_not_used_again() -> None:
    async with scripted(lambda n: (OK, True)) as server:  # closes after each answer, unsaid
        up = upstream(server.url)
        first = await fetch(up)
        await asyncio.sleep(0.1)  # the close arrives while the connection is idle
        second = await fetch(up)
        await up.aclose()
    assert first == second == (200, b"hello")
    assert server.connections == 2
    assert up.attempts == 2  # no retry was needed: the closed connection was skipped


def test_a_line_break_in_a_header_value_is_refused() -> None:
    origin = Origin.parse("http://upstream:8080/base")
    head = request_head(origin, "GET", b"/a", b"q=1", [(b"x-a", b"1")], chunked=False)
    assert head == b"GET /base/a?q=1 HTTP/1.1\r\nhost: upstream:8080\r\nx-a: 1\r\n\r\n"
    with pytest.raises(ValueError, match="line break"):
        request_head(origin, "GET", b"/a", b"", [(b"x-a", b"1\r\nx-evil: 1")], chunked=False)
    post = request_head(origin, "POST", b"/a", b"", [], chunked=False)
    assert b"content-length: 0\r\n" in post
    assert Origin.parse("https://bank.example/").host_header == b"bank.example"


def test_the_client_works_on_uvloop_as_the_gateway_runs_it() -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        async with scripted(lambda n: (OK, False)) as server:
            up = upstream(server.url)
            answers = [await fetch(up) for _ in range(2)]
            await up.aclose()
            assert server.connections == 1
            return answers

    assert uvloop.run(scenario()) == [(200, b"hello")] * 2


async def test_bytes_after_a_complete_answer_spoil_the_connection_not_the_answer() -> None:
    extra = OK + b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbad"
    async with scripted(lambda n: (extra, False)) as server:
        up = upstream(server.url)
        answers = [await fetch(up), await fetch(up)]
        await up.aclose()
    assert answers == [(200, b"hello")] * 2
    assert server.connections == 2  # the first connection was not used again
