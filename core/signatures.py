"""HMAC-SHA256 webhook signatures: our feeds (the rail, the card processor) sign, our API verifies.

Header format (Stripe-like): ``t=<unix seconds>,v1=<hex digest>`` where the digest is
HMAC-SHA256 over ``b"<t>." + raw body`` keyed with the feed's secret; each feed sends it in its
own header (`SIGNATURE_HEADER` for the rail, `PROCESSOR_SIGNATURE_HEADER` for the card
processor). Several ``v1`` entries may be present (secret rotation); any one matching is
enough. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Rail-Signature"
PROCESSOR_SIGNATURE_HEADER = "X-Processor-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def _digest(secret: str | bytes, body: bytes, timestamp: int) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """Return the `X-Rail-Signature` header value for `body` signed at `timestamp`."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def parse_header(header: str) -> tuple[int, list[str]] | None:
    """Split a signature header into (timestamp, v1 signatures); None when malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if timestamp is not None or not value.isdigit() or len(value) > 12:
                return None
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value.lower())
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify(
    secret: str | bytes,
    body: bytes,
    header: str | None,
    now: float,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when `header` signs exactly `body` with `secret` within `tolerance_seconds` of `now`."""
    if not header:
        return False
    parsed = parse_header(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, body, timestamp)
    matched = False
    for candidate in signatures:  # no early exit: time does not depend on which entry matched
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    return matched
