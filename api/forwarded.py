"""The client's address behind reverse proxies: `X-Forwarded-For` believed only from trusted ones.

Each proxy appends the address it received the request from, so the list reads
`client, proxy1, proxy2` and the peer is the last proxy. Everything left of the first hop a
trusted proxy wrote is whatever the client chose to send. So: start at the peer; while the
current hop is a trusted proxy, step one entry to the left; the first untrusted hop is the
client. Without trusted proxies (the default) the header is ignored and the peer is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(hop: str) -> Address | None:
    """An address from one hop (`1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`), or None."""
    hop = hop.strip()
    if hop.startswith("["):
        hop = hop[1 : hop.find("]")] if "]" in hop else ""
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(hop)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def forwarded_client(peer: str, forwarded_for: Iterable[str], proxies: Sequence[Network]) -> str:
    """The right-most untrusted hop of peer + X-Forwarded-For (the peer when it is untrusted)."""
    current = _parse(peer)
    if current is None or not proxies or not _trusted(current, proxies):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:  # a trusted proxy would not write this: stop at the last good hop
            break
        current = address
        if not _trusted(current, proxies):
            break
    return str(current)
