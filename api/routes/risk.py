"""`POST /api/security/risk/assess`: the payment workflows' risk engine, explained; and
`GET /api/security/threats`: live threat signals (compliance and admin).

A customer may score their own payments, a payment they are about to make, or themselves;
another customer's payment or account is a 404 (audited). Staff with `ops`, `compliance` or
`admin` may score anyone's.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from activities.security.risk import RiskPolicy, gather_facts, score_risk
from activities.security.threats import threat_report
from api.deps import AccessClaims, ClientDep, ServicesDep
from api.money import currency_code, minor_units
from api.services import Services
from api.staff import StaffCaller, require_roles, staff_roles
from core import errors
from core.db import transaction
from core.settings import Settings
from models.audit import record_audit
from models.identity.tables import User
from models.ledger.tables import LedgerAccount
from models.payments.tables import Payment
from models.security.payloads import RiskFacts
from models.security.reports import ThreatReport
from models.security.schemas import RiskAssessBody, RiskAssessment
from models.staff.tables import StaffRole

router = APIRouter(prefix="/api/security", tags=["security"])
ASSESSORS = {StaffRole.OPS.value, StaffRole.COMPLIANCE.value, StaffRole.ADMIN.value}


def policy_of(settings: Settings) -> RiskPolicy:
    """The engine's limits from the settings (the workers build the same)."""
    return RiskPolicy(
        max_single_minor=settings.max_single_payment_minor,
        max_per_hour=settings.max_payments_per_hour,
        review_threshold_minor=settings.payment_review_threshold_minor,
        review_score=settings.risk_review_score,
    )


async def _facts(
    services: Services, body: RiskAssessBody, caller: uuid.UUID, staff: bool
) -> tuple[str, uuid.UUID, RiskFacts]:
    """The subject's facts; another customer's object is a 404 unless the caller is staff."""
    st = services.settings
    days, hours = st.risk_lookback_days, st.risk_recent_change_hours
    async with services.reads() as session:
        if body.payment_id is not None:
            payment = await session.get(Payment, body.payment_id)
            if payment is None or (payment.user_id != caller and not staff):
                raise errors.NotFound("unknown payment")
            facts = await gather_facts(
                session,
                user_id=payment.user_id,
                amount=payment.amount,
                currency=payment.currency,
                payment_id=payment.id,
                method_id=payment.payment_method_id,
                to_account_id=payment.to_account_id,
                lookback_days=days,
                recent_hours=hours,
            )
            return "payment", payment.user_id, facts
        if body.customer_id is not None:
            user = await session.get(User, body.customer_id)
            if user is None or (user.id != caller and not staff):
                raise errors.NotFound("unknown customer")
            facts = await gather_facts(
                session, user_id=user.id, lookback_days=days, recent_hours=hours
            )
            return "customer", user.id, facts
        assert body.from_account_id is not None  # the body's validator: a proposed payment
        assert body.amount is not None
        assert body.currency is not None
        account = await session.get(LedgerAccount, body.from_account_id)
        if account is None or account.owner_user_id is None:
            raise errors.NotFound("unknown account")
        if account.owner_user_id != caller and not staff:
            raise errors.NotFound("unknown account")
        currency = currency_code(body.currency)
        facts = await gather_facts(
            session,
            user_id=account.owner_user_id,
            amount=minor_units(body.amount, currency),
            currency=currency,
            method_id=body.payment_method_id,
            to_account_id=body.to_account_id,
            lookback_days=days,
            recent_hours=hours,
        )
        return "proposed_payment", account.owner_user_id, facts


@router.post("/risk/assess")
async def assess_risk(
    body: RiskAssessBody, claims: AccessClaims, services: ServicesDep, client: ClientDep
) -> RiskAssessment:
    """Score a payment, a proposed payment or a customer with the workflows' engine; each
    factor's points are explained."""
    staff = False
    if set(map(str, claims.extra.get("roles") or [])) & ASSESSORS:
        async with services.reads() as session:  # the roles claim, confirmed
            staff = bool(set(await staff_roles(session, claims.subject)) & ASSESSORS)
    try:
        subject, customer_id, facts = await _facts(services, body, claims.subject, staff)
    except errors.NotFound:
        async with transaction(services.sessions) as session:
            await record_audit(
                session,
                "risk.assess_refused",
                actor_user_id=claims.subject,
                client=client,
                details=body.model_dump(mode="json", exclude_none=True),
            )
        raise
    st = services.settings
    result = score_risk(facts, policy_of(st), st.risk_recent_change_hours)
    async with transaction(services.sessions) as session:
        await record_audit(
            session,
            "risk.assessed",
            actor_user_id=claims.subject,
            subject=str(customer_id),
            client=client,
            details={"subject": subject, "score": result.score, "decision": result.decision},
        )
    return RiskAssessment(
        subject=subject,
        customer_id=customer_id,
        decision=result.decision,
        reason=result.reason,
        score=result.score,
        review_score=st.risk_review_score,
        factors=result.factors,
    )


Watchers = Annotated[StaffCaller, Depends(require_roles(StaffRole.COMPLIANCE, StaffRole.ADMIN))]


@router.get("/threats")
async def threats(
    staff: Watchers,
    services: ServicesDep,
    window_minutes: Annotated[int, Query(ge=1, le=1440)] = 60,
) -> ThreatReport:
    """Brute force, refresh-token reuse, forged/replayed webhooks, new-device logins and 404
    bursts, each counted over the window."""
    async with services.reads() as session:
        return await threat_report(
            session, services.redis, window_minutes, services.settings.enumeration_404_burst
        )
