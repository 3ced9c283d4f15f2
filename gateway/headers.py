"""What the gateway forwards: hop-by-hop headers removed, X-Forwarded-*, trace and request ids."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

# RFC 9110 7.6.1 plus the de-facto ones (Proxy-Connection, Keep-Alive): meaningful for one
# connection only. Any header named in Connection is hop-by-hop too (handled below).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

REQUEST_ID = "x-request-id"  # the API's header (api/middleware.py)
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")

RawHeaders = list[tuple[bytes, bytes]]


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[str]:
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.decode("latin-1").split(",") if t.strip())
    return named


def strip_hop_by_hop(
    headers: Iterable[tuple[bytes, bytes]], *, drop: Iterable[str] = ()
) -> RawHeaders:
    """The end-to-end headers only (also dropping `drop`, lower-case names)."""
    headers = list(headers)
    gone = HOP_BY_HOP | _connection_tokens(headers) | set(drop)
    return [(n, v) for n, v in headers if n.decode("latin-1").lower() not in gone]


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID if sane (1-64 printable characters), else a new one."""
    for name, value in headers:
        if name.lower() == REQUEST_ID.encode():
            text = value.decode("latin-1")
            if 0 < len(text) <= 64 and text.isprintable():
                return text
    return _random_hex(128)


def traceparent(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's W3C traceparent if well-formed, else a new sampled trace."""
    for name, value in headers:
        if name.lower() == b"traceparent":
            text = value.decode("latin-1").strip().lower()
            if _TRACEPARENT.match(text):
                return text
    return f"00-{_random_hex(128)}-{_random_hex(64)}-01"


def _random_hex(bits: int) -> str:
    """A random non-zero id, in hex. Ids must be unique, not secret: the process's Mersenne
    Twister (as OpenTelemetry's own id generator) instead of a system call per id."""
    return f"{random.getrandbits(bits) or 1:0{bits // 4}x}"


def upstream_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    client_ip: str | None,
    scheme: str,
    host: str | None,
    rid: str,
    trace: str,
) -> RawHeaders:
    """The headers sent upstream: end-to-end ones, plus X-Forwarded-*, traceparent, request id.

    Host is left to the client library (the upstream's own); the caller's host travels as
    X-Forwarded-Host. X-Forwarded-For appends the peer to what earlier proxies wrote.
    """
    headers = list(headers)
    prior_for = [v.decode("latin-1") for n, v in headers if n.lower() == b"x-forwarded-for"]
    out = strip_hop_by_hop(
        headers,
        drop=(
            "host",
            "expect",  # 100-continue was settled between the client and this server
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "traceparent",
            REQUEST_ID,
        ),
    )
    chain = ", ".join([*prior_for, *([client_ip] if client_ip else [])])
    if chain:
        out.append((b"x-forwarded-for", chain.encode("latin-1")))
    out.append((b"x-forwarded-proto", scheme.encode("latin-1")))
    if host:
        out.append((b"x-forwarded-host", host.encode("latin-1")))
    out.append((b"traceparent", trace.encode("latin-1")))
    out.append((REQUEST_ID.encode(), rid.encode("latin-1")))
    return out


def response_headers(headers: Iterable[tuple[bytes, bytes]], rid: str) -> RawHeaders:
    """The upstream's end-to-end headers for the client, with the request id echoed."""
    out = strip_hop_by_hop(headers, drop=(REQUEST_ID,))
    out.append((REQUEST_ID.encode(), rid.encode("latin-1")))
    return out
