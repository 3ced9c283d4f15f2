"""Live threat signals, each a count over a window: brute force (failed logins and the
throttle's current lockouts), refresh-token reuse, forged and replayed webhooks, logins from
new devices, and bursts of 404s (enumeration of other users' ids)."""

from __future__ import annotations

from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.security.enumeration import not_found_counts
from models.base import utcnow
from models.security.reports import ThreatReport, ThreatSignal

FORGED = ("webhook.rejected", "processor.rejected")
REPLAYED = ("processor.duplicate", "inbound.duplicate")
WATCHED = ("login.failed", "refresh.reuse_detected", *FORGED, *REPLAYED)

_AUDIT_COUNTS = text(
    "SELECT action, count(*) AS n, count(DISTINCT client) AS clients FROM audit_log "
    "WHERE occurred_at > :since AND action = ANY(:actions) GROUP BY action"
)
_NEW_DEVICES = text(
    "SELECT count(*) FROM known_devices k WHERE k.first_seen_at > :since AND EXISTS "
    "(SELECT 1 FROM known_devices o WHERE o.user_id = k.user_id "
    "AND o.first_seen_at < k.first_seen_at)"
)


async def _locks(redis: Redis, scope: str) -> int:
    count = 0
    async for _ in redis.scan_iter(match=f"throttle:lock:{scope}:*", count=500):
        count += 1
    return count


async def threat_report(
    session: AsyncSession, redis: Redis, minutes: int, burst: int
) -> ThreatReport:
    """Every signal over the last `minutes`; `burst`: 404s that make a user a suspect."""
    now = utcnow()
    since: datetime = now - timedelta(minutes=minutes)
    rows = await session.execute(_AUDIT_COUNTS, {"since": since, "actions": list(WATCHED)})
    counts = {r.action: (int(r.n), int(r.clients)) for r in rows}
    new_devices = int(await session.scalar(_NEW_DEVICES, {"since": since}) or 0)

    def n(*actions: str) -> int:
        return sum(counts.get(a, (0, 0))[0] for a in actions)

    total_404, per_user = await not_found_counts(redis, minutes)
    suspects = sorted(u for u, c in per_user.items() if c >= burst)
    signals = [
        ThreatSignal(
            name="brute_force",
            count=n("login.failed"),
            details={
                "failed_logins": n("login.failed"),
                "clients": counts.get("login.failed", (0, 0))[1],
                "locked_accounts_now": await _locks(redis, "acct"),
                "locked_clients_now": await _locks(redis, "client"),
            },
        ),
        ThreatSignal(name="refresh_token_reuse", count=n("refresh.reuse_detected"), details={}),
        ThreatSignal(
            name="forged_webhooks",
            count=n(*FORGED),
            details={a: counts[a][0] for a in FORGED if a in counts},
        ),
        ThreatSignal(
            name="replayed_webhooks",
            count=n(*REPLAYED),
            details={a: counts[a][0] for a in REPLAYED if a in counts},
        ),
        ThreatSignal(name="new_device_logins", count=new_devices, details={}),
        ThreatSignal(
            name="enumeration",
            count=total_404,
            details={"burst_threshold": burst, "suspect_user_ids": suspects},
        ),
    ]
    return ThreatReport(generated_at=now, window_minutes=minutes, signals=signals)
