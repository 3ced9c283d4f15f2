"""Resume cursors: a frame's `id` names the position reached in each of the three streams.

A cursor is opaque to clients (base64url of `v1:<id>:<id>:<id>`, one Redis stream entry id per
stream, in `events.STREAMS` order). Anything that does not decode is treated as unknown, which
answers a `resync` frame, never an error.
"""

from __future__ import annotations

import base64
import binascii
import re

from activities.events.streams import STREAMS

StreamId = tuple[int, int]
Positions = dict[str, StreamId]
ZERO: StreamId = (0, 0)
_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_VERSION = "v1"


def parse_id(raw: str) -> StreamId:
    """A Redis stream entry id (`<ms>-<seq>`) as a comparable pair; ValueError if malformed."""
    match = _ID.match(raw)
    if match is None:
        raise ValueError(f"not a stream id: {raw!r}")
    return int(match.group(1)), int(match.group(2))


def format_id(value: StreamId) -> str:
    """The Redis form of a stream entry id."""
    return f"{value[0]}-{value[1]}"


def encode(positions: Positions) -> str:
    """The opaque cursor for these positions."""
    text = ":".join([_VERSION, *(format_id(positions.get(s, ZERO)) for s in STREAMS)])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str) -> Positions | None:
    """The positions a cursor names, or None when it is not one of ours."""
    if not isinstance(cursor, str) or len(cursor) > 200:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, *ids = text.split(":")
        if version != _VERSION or len(ids) != len(STREAMS):
            return None
        return {stream: parse_id(raw) for stream, raw in zip(STREAMS, ids, strict=True)}
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
