"""The compliance report of a period: large-value transactions, structuring, dormant accounts
that wake, MFA coverage, failed logins and the audit chain; as JSON or flattened to CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from models.audit import verify_audit_chain
from models.base import utcnow
from models.security.reports import (
    ChainStatus,
    ComplianceReport,
    FailedLogins,
    LargeValue,
    MfaCoverage,
    StructuringSuspect,
    WokenAccount,
)

MAX_ROWS = 1000  # per list: a report is for reading, exports of all rows are for the ledger


@dataclass(frozen=True)
class CompliancePolicy:
    """The thresholds (settings)."""

    large_value_minor: int
    structuring_count: int
    band_percent: int
    dormant_days: int


_LARGE = text(
    "SELECT id, user_id, account_id, direction, amount, currency, occurred_at FROM transactions "
    "WHERE status = 'posted' AND amount >= :threshold AND occurred_at >= :since "
    "AND occurred_at < :until ORDER BY occurred_at, id LIMIT :cap"
)
_STRUCTURING = text(
    "SELECT user_id, currency, count(*) AS n, sum(amount) AS total FROM transactions "
    "WHERE direction = 'debit' AND status IN ('posted', 'pending') "
    "AND amount >= :low AND amount < :threshold AND occurred_at >= :since "
    "AND occurred_at < :until GROUP BY user_id, currency HAVING count(*) >= :count "
    "ORDER BY count(*) DESC, user_id LIMIT :cap"
)
# The first money movement of each account in the period, and the one before it.
_WOKEN = text(
    """
    WITH first_in AS (
        SELECT account_id, min(occurred_at) AS woke_at, min(user_id::text)::uuid AS user_id
        FROM transactions
        WHERE status IN ('posted', 'pending') AND occurred_at >= :since AND occurred_at < :until
        GROUP BY account_id
    )
    SELECT f.account_id, f.user_id, f.woke_at, p.last_at FROM first_in f
    CROSS JOIN LATERAL (
        SELECT max(t.occurred_at) AS last_at FROM transactions t
        WHERE t.account_id = f.account_id AND t.status IN ('posted', 'pending')
          AND t.occurred_at < f.woke_at
    ) p
    WHERE p.last_at IS NOT NULL AND p.last_at < f.woke_at - make_interval(days => :days)
    ORDER BY f.woke_at LIMIT :cap
    """
)
_MFA = text(
    "SELECT count(*) AS active, count(*) FILTER (WHERE u.mfa_enabled) AS with_mfa, "
    "count(*) FILTER (WHERE s.user_id IS NOT NULL) AS staff, "
    "count(*) FILTER (WHERE s.user_id IS NOT NULL AND u.mfa_enabled) AS staff_mfa "
    "FROM users u LEFT JOIN (SELECT DISTINCT user_id FROM staff_roles) s ON s.user_id = u.id "
    "WHERE u.status = 'active'"
)
_LOGINS = text(
    "SELECT count(*) FILTER (WHERE action = 'login.failed') AS passwords, "
    "count(*) FILTER (WHERE action = 'login.mfa' AND details->>'accepted' = 'false') AS codes, "
    "count(DISTINCT client) FILTER (WHERE action = 'login.failed' OR (action = 'login.mfa' "
    "AND details->>'accepted' = 'false')) AS clients, "
    "count(*) FILTER (WHERE action = 'refresh.reuse_detected') AS reuse "
    "FROM audit_log WHERE occurred_at >= :since AND occurred_at < :until "
    "AND action IN ('login.failed', 'login.mfa', 'refresh.reuse_detected')"
)


async def compliance_report(
    session: AsyncSession, since: datetime, until: datetime, policy: CompliancePolicy
) -> ComplianceReport:
    """Build the report of [since, until) from one session."""
    window = {"since": since, "until": until, "cap": MAX_ROWS}
    threshold = policy.large_value_minor
    large = await session.execute(_LARGE, {**window, "threshold": threshold})
    low = threshold - threshold * policy.band_percent // 100
    structuring = await session.execute(
        _STRUCTURING,
        {**window, "low": low, "threshold": threshold, "count": policy.structuring_count},
    )
    woken = await session.execute(_WOKEN, {**window, "days": policy.dormant_days})
    mfa = (await session.execute(_MFA)).one()
    logins = (await session.execute(_LOGINS, window)).one()
    try:
        chain = ChainStatus(ok=True, events=await verify_audit_chain(session))
    except ValueError as exc:
        chain = ChainStatus(ok=False, events=0, error=str(exc))
    return ComplianceReport(
        period_from=since,
        period_to=until,
        generated_at=utcnow(),
        large_value_threshold=threshold,
        large_value=[
            LargeValue(
                transaction_id=r.id,
                user_id=r.user_id,
                account_id=r.account_id,
                direction=r.direction,
                amount=r.amount,
                currency=r.currency,
                occurred_at=r.occurred_at,
            )
            for r in large
        ],
        structuring=[
            StructuringSuspect(user_id=r.user_id, currency=r.currency, count=r.n, total=r.total)
            for r in structuring
        ],
        dormant_woken=[
            WokenAccount(
                account_id=r.account_id,
                user_id=r.user_id,
                dormant_days=(r.woke_at - r.last_at).days,
                woke_at=r.woke_at,
            )
            for r in woken
        ],
        mfa_coverage=MfaCoverage(
            active_users=mfa.active,
            with_mfa=mfa.with_mfa,
            staff=mfa.staff,
            staff_with_mfa=mfa.staff_mfa,
        ),
        failed_logins=FailedLogins(
            failed_passwords=logins.passwords,
            failed_second_factors=logins.codes,
            distinct_clients=logins.clients,
            refresh_token_reuse=logins.reuse,
        ),
        audit_chain=chain,
    )


def report_csv(report: ComplianceReport) -> str:
    """The report flattened: one row per finding or figure (section, subject, value, ...)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "subject", "user_id", "amount", "currency", "at", "value"])
    for lv in report.large_value:
        writer.writerow(
            [
                "large_value",
                lv.transaction_id,
                lv.user_id,
                lv.amount,
                lv.currency,
                lv.occurred_at.isoformat(),
                lv.direction,
            ]
        )
    for s in report.structuring:
        writer.writerow(["structuring", "", s.user_id, s.total, s.currency, "", s.count])
    for w in report.dormant_woken:
        writer.writerow(
            [
                "dormant_woken",
                w.account_id,
                w.user_id,
                "",
                "",
                w.woke_at.isoformat(),
                w.dormant_days,
            ]
        )
    for name, value in (
        *report.mfa_coverage.model_dump().items(),
        *report.failed_logins.model_dump().items(),
    ):
        writer.writerow(["figure", name, "", "", "", "", value])
    writer.writerow(
        [
            "audit_chain",
            "ok" if report.audit_chain.ok else "broken",
            "",
            "",
            "",
            "",
            report.audit_chain.events,
        ]
    )
    return out.getvalue()
