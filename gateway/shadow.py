"""Shadow comparison (github/scientist's pattern, async): legacy answers, the new side's answer
to the same safe request is compared, and a disagreement is recorded without its values.

Recorded per difference: route, method, path template (ids replaced), both statuses and a
bounded summary of the JSON paths that differ with the kind of difference (changed, missing,
added, type, length). Values are never stored: either answer may hold personal data, and the
paths are enough to find the field that the new side gets wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

MAX_PATHS: Final = 20  # differences listed per comparison; the count stays exact

_INSERT_DIFF = (
    "INSERT INTO gateway_shadow_diffs (route_prefix, method, path_template, legacy_status, "
    "new_status, kind, summary, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)"
)
_COUNT = (
    "INSERT INTO gateway_shadow_counts (route_prefix, compared, differed) VALUES ($1, 1, $2) "
    "ON CONFLICT (route_prefix) DO UPDATE SET compared = gateway_shadow_counts.compared + 1, "
    "differed = gateway_shadow_counts.differed + EXCLUDED.differed, updated_at = now()"
)


@dataclass(slots=True)
class Answer:
    """One side's answer, as far as the comparison needs it."""

    status: int | None  # None: no answer (error or timeout)
    content_type: str = ""
    body: bytes = b""
    complete: bool = True  # False when the body was longer than the comparison's cap


def _normalize(value: Any, ignored: frozenset[str], path: str) -> Any:
    if isinstance(value, dict):
        return {
            k: _normalize(v, ignored, f"{path}.{k}" if path else k)
            for k, v in value.items()
            if k not in ignored and (f"{path}.{k}" if path else k) not in ignored
        }
    if isinstance(value, list):
        return [_normalize(v, ignored, path) for v in value]
    return value


def _kind_of(value: Any) -> str:
    return type(value).__name__


def json_differences(legacy: Any, new: Any, path: str = "") -> Iterable[dict[str, Any]]:
    """The JSON paths where two documents differ, with the kind of difference (no values)."""
    if isinstance(legacy, dict) and isinstance(new, dict):
        for key in sorted(legacy.keys() | new.keys()):
            sub = f"{path}/{key}"
            if key not in new:
                yield {"path": sub, "change": "missing_in_new"}
            elif key not in legacy:
                yield {"path": sub, "change": "added_in_new"}
            else:
                yield from json_differences(legacy[key], new[key], sub)
    elif isinstance(legacy, list) and isinstance(new, list):
        if len(legacy) != len(new):
            yield {"path": path or "/", "change": "length", "legacy": len(legacy), "new": len(new)}
        for i, (a, b) in enumerate(zip(legacy, new, strict=False)):
            yield from json_differences(a, b, f"{path}/{i}")
    elif _kind_of(legacy) != _kind_of(new):
        yield {
            "path": path or "/",
            "change": "type",
            "legacy": _kind_of(legacy),
            "new": _kind_of(new),
        }
    elif legacy != new:
        yield {"path": path or "/", "change": "changed"}


def _json(answer: Answer) -> Any:
    if "json" not in answer.content_type:
        raise ValueError("not JSON")
    return json.loads(answer.body)


def compare(
    legacy: Answer, new: Answer, ignored: frozenset[str]
) -> tuple[str, dict[str, Any]] | None:
    """None when the answers agree, else the kind (status|body|error) and a bounded summary."""
    if new.status is None:
        return "error", {"detail": "the new side gave no answer"}
    if legacy.status != new.status:
        return "status", {}
    if not legacy.complete or not new.complete:
        return None  # too large to compare: the statuses agreed
    try:
        a = _normalize(_json(legacy), ignored, "")
        b = _normalize(_json(new), ignored, "")
    except ValueError:
        if legacy.body == new.body:
            return None
        return "body", {
            "change": "bytes",
            "legacy_bytes": len(legacy.body),
            "new_bytes": len(new.body),
            "legacy_sha256": hashlib.sha256(legacy.body).hexdigest()[:16],
            "new_sha256": hashlib.sha256(new.body).hexdigest()[:16],
        }
    diffs = list(json_differences(a, b))
    if not diffs:
        return None
    return "body", {"differences": len(diffs), "paths": diffs[:MAX_PATHS]}


async def record(
    pool: asyncpg.Pool,
    *,
    route_prefix: str,
    method: str,
    path_template: str,
    legacy: Answer,
    new: Answer,
    outcome: tuple[str, dict[str, Any]] | None,
    request_id: str,
) -> None:
    """Count the comparison and store the difference, if any, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_COUNT, route_prefix, 0 if outcome is None else 1)
        if outcome is not None:
            kind, summary = outcome
            await conn.execute(
                _INSERT_DIFF,
                route_prefix,
                method,
                path_template,
                legacy.status,
                new.status,
                kind,
                json.dumps(summary),
                request_id,
            )
