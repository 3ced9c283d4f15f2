"""The client side of the protocol: close codes, error codes, and reading one client message."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

SUBPROTOCOL = "vortex.v1"
BEARER_PREFIX = "bearer."  # `Sec-WebSocket-Protocol: vortex.v1, bearer.<access token>`


class CloseCode(IntEnum):
    """Close codes of `/ws` (docs/websocket.md); 1000/1001/1011 keep their standard meaning."""

    PROTOCOL_ERROR = 4400  # the first message was not `auth`, or could not be read
    UNAUTHORIZED = 4401  # token missing, forged or expired (also: expired while connected)
    REVOKED = 4403  # the session was revoked (logout, refresh reuse) or the user disabled
    IDLE_TIMEOUT = 4408  # no message from the client within the idle timeout
    SLOW_CONSUMER = 4409  # the client did not read its frames fast enough
    TOO_MANY = 4429  # connection limit per user, or a flood of messages


class BadMessage(Exception):
    """A client message that cannot be acted upon; `code` is the error frame's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def read_message(event: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    """The JSON object of one ASGI `websocket.receive` event; BadMessage for anything else."""
    text = event.get("text")
    if text is None:
        raise BadMessage("binary-not-supported", "send JSON text frames, not binary frames")
    if len(text) > max_bytes:  # characters >= bytes / 4: cheap first check
        raise BadMessage("message-too-large", f"a message may be at most {max_bytes} bytes")
    if len(text.encode()) > max_bytes:
        raise BadMessage("message-too-large", f"a message may be at most {max_bytes} bytes")
    try:
        body = json.loads(text)
    except ValueError:
        raise BadMessage("malformed", "a message must be a JSON object") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise BadMessage("malformed", 'a message must be a JSON object with a "type"')
    return body


def channel_list(body: dict[str, Any], limit: int) -> list[str]:
    """The `channels` of a message: a list of at most `limit` strings."""
    channels = body.get("channels")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise BadMessage("malformed", '"channels" must be a list of channel names')
    if len(channels) > limit:
        raise BadMessage("too-many-channels", f"at most {limit} channels per socket")
    return list(dict.fromkeys(channels))


def bearer_from_subprotocols(offered: list[str]) -> str | None:
    """The access token offered as a `bearer.<token>` subprotocol, if any."""
    for value in offered:
        if value.startswith(BEARER_PREFIX):
            return value[len(BEARER_PREFIX) :]
    return None
