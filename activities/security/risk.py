"""The risk engine: one pure scoring function over facts gathered in one query, used by the
payment workflows (`payments.assess_risk`) and by `POST /api/security/risk/assess` alike.

Hard rules decide first and are unchanged from before the engine: a payment above the single
payment limit, or one too many within the hour, is denied; one at or above the review
threshold needs the customer's TOTP approval. The soft factors add points, each explained;
a score at or above `review_score` also sends the payment to review.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.security.payloads import RiskFactor, RiskFacts, RiskScore

# Changes of a second factor or a password after activation (the registration's own MFA setup
# happens before activation and does not count).
SECURITY_CHANGES = ("password.changed", "mfa.changed", "mfa.reset", "mfa.setup")


@dataclass(frozen=True)
class RiskPolicy:
    """Limits and the score that sends a payment to review."""

    max_single_minor: int
    max_per_hour: int
    review_threshold_minor: int
    review_score: int


def _factors(f: RiskFacts, policy: RiskPolicy, recent_hours: int) -> list[RiskFactor]:
    velocity = min(30, 30 * f.payments_last_hour // max(policy.max_per_hour, 1))
    out = [
        RiskFactor(
            name="velocity",
            points=velocity,
            detail=f"{f.payments_last_hour} payments in the last hour (max {policy.max_per_hour})",
        )
    ]
    if f.new_beneficiary is not None:
        out.append(
            RiskFactor(
                name="new_beneficiary",
                points=15 if f.new_beneficiary else 0,
                detail="never paid before" if f.new_beneficiary else "paid before",
            )
        )
    if f.amount:
        if f.typical_amount is None or f.history_count < 3:
            points, detail = 10, f"little history ({f.history_count} completed payments)"
        else:
            ratio = f.amount / max(f.typical_amount, 1)
            points = 40 if ratio >= 10 else 25 if ratio >= 3 else 0
            detail = f"{ratio:.1f}x the customer's typical {f.typical_amount} (minor units)"
        out.append(RiskFactor(name="amount_vs_history", points=points, detail=detail))
    age = f.account_age_days
    out.append(
        RiskFactor(
            name="account_age",
            points=15 if age < 7 else 5 if age < 30 else 0,
            detail=f"customer for {age:.0f} days",
        )
    )
    out.append(
        RiskFactor(
            name="failed_logins",
            points=min(25, 5 * f.failed_logins_24h),
            detail=f"{f.failed_logins_24h} failed logins in 24 hours",
        )
    )
    changed = f.security_change_hours_ago
    out.append(
        RiskFactor(
            name="recent_security_change",
            points=25 if changed is not None else 0,
            detail=(
                f"MFA or password changed {changed:.0f} hours ago"
                if changed is not None
                else f"no MFA or password change in {recent_hours} hours"
            ),
        )
    )
    return out


def score_risk(facts: RiskFacts, policy: RiskPolicy, recent_hours: int = 72) -> RiskScore:
    """Score facts: pure, so the workflows' activity and the API give the same answer."""
    factors = _factors(facts, policy, recent_hours)
    total = sum(f.points for f in factors)
    decision, reason = "allow", None
    if facts.amount > policy.max_single_minor:
        decision, reason = "deny", "amount above the single-payment limit"
    elif facts.payments_last_hour >= policy.max_per_hour:
        decision, reason = "deny", "too many payments in the last hour"
    elif facts.amount and facts.amount >= policy.review_threshold_minor:
        decision, reason = "review", "large amount: customer approval needed"
    elif total >= policy.review_score:
        decision, reason = "review", f"risk score {total}: customer approval needed"
    return RiskScore(decision=decision, reason=reason, score=total, factors=factors)


# Bounds on the work per payment, whatever a customer's history: the typical amount and the
# known beneficiaries come from the latest completed payments only, and the last hour is
# counted up to a cap far above any velocity limit.
HISTORY_LIMIT = 200
VELOCITY_CAP = 1000

_FACTS = text(
    """
    WITH u AS (SELECT coalesce(activated_at, created_at) AS since FROM users WHERE id = :user),
    p AS (SELECT payment_method_id, to_account_id FROM payments WHERE id = :payment),
    b AS (
        SELECT coalesce(CAST(:method AS UUID), (SELECT payment_method_id FROM p)) AS method,
               coalesce(CAST(:to_account AS UUID), (SELECT to_account_id FROM p)) AS to_account
    ),
    done AS (
        SELECT amount, payment_method_id, to_account_id FROM payments
        WHERE user_id = :user AND id <> :payment AND status = 'completed'
          AND created_at > :history_since
          AND (CAST(:currency AS TEXT) IS NULL OR currency = CAST(:currency AS TEXT))
        ORDER BY created_at DESC LIMIT :history_limit
    )
    SELECT
      (SELECT count(*) FROM (SELECT 1 FROM payments WHERE user_id = :user AND id <> :payment
         AND created_at > :hour_ago LIMIT :velocity_cap) AS recent) AS last_hour,
      (SELECT count(*) FROM done) AS history_count,
      (SELECT avg(amount)::bigint FROM done) AS typical,
      (SELECT method IS NOT NULL OR to_account IS NOT NULL FROM b) AS has_beneficiary,
      (SELECT count(*) FROM done, b WHERE done.payment_method_id = b.method
         OR done.to_account_id = b.to_account) AS beneficiary_uses,
      (SELECT since FROM u) AS since,
      (SELECT count(*) FROM audit_log WHERE actor_user_id = :user AND occurred_at > :day_ago
         AND (action = 'login.failed'
              OR (action = 'login.mfa' AND details->>'accepted' = 'false'))) AS failed_logins,
      (SELECT max(occurred_at) FROM audit_log WHERE actor_user_id = :user
         AND action = ANY(:changes) AND occurred_at > :change_since
         AND occurred_at > (SELECT since FROM u)) AS changed_at
    """
)


async def gather_facts(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    amount: int = 0,
    currency: str | None = None,
    payment_id: uuid.UUID | None = None,
    method_id: uuid.UUID | None = None,
    to_account_id: uuid.UUID | None = None,
    lookback_days: int = 90,
    recent_hours: int = 72,
) -> RiskFacts:
    """The facts of one payment (or of the customer alone) in one round trip.

    The beneficiary is `method_id` / `to_account_id` when given, else the payment row's own
    (read in the same statement: a transfer's risk check is one SQL call, decision 95)."""
    now = utcnow()
    row = (
        await session.execute(
            _FACTS,
            {
                "user": user_id,
                "payment": payment_id or uuid.UUID(int=0),
                "method": method_id,
                "to_account": to_account_id,
                "currency": currency,
                "hour_ago": now - timedelta(hours=1),
                "day_ago": now - timedelta(hours=24),
                "history_since": now - timedelta(days=lookback_days),
                "change_since": now - timedelta(hours=recent_hours),
                "changes": list(SECURITY_CHANGES),
                "history_limit": HISTORY_LIMIT,
                "velocity_cap": VELOCITY_CAP,
            },
        )
    ).one()
    since: datetime | None = row.since
    changed: datetime | None = row.changed_at
    return RiskFacts(
        amount=amount,
        payments_last_hour=row.last_hour,
        history_count=row.history_count,
        typical_amount=row.typical,
        new_beneficiary=row.beneficiary_uses == 0 if row.has_beneficiary else None,
        account_age_days=(now - since).total_seconds() / 86400 if since else 0.0,
        failed_logins_24h=row.failed_logins,
        security_change_hours_ago=(now - changed).total_seconds() / 3600 if changed else None,
    )
