"""The risk engine: a pure scoring function whose hard rules are the payment workflows' old
ones, soft factors that explain their points, and one engine behind both the workflows'
activity and `POST /api/security/risk/assess` (the same payment gets the same score)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from activities.payments import PaymentActivities
from activities.security.risk import RiskPolicy, gather_facts, score_risk
from api.services import Services
from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.payments.payloads import RiskInput
from models.security.payloads import RiskFacts
from models.staff.tables import StaffRole
from tests.flows import Customer, fund, register_customer
from tests.security_support import audit_rows, new_member

POLICY = RiskPolicy(
    max_single_minor=1_000_000, max_per_hour=10, review_threshold_minor=100_000, review_score=80
)
SETTLED = RiskFacts(
    amount=1_000,
    history_count=20,
    typical_amount=1_000,
    new_beneficiary=False,
    account_age_days=400,
)


def _points(facts: RiskFacts) -> dict[str, int]:
    return {f.name: f.points for f in score_risk(facts, POLICY).factors}


def test_a_settled_customer_paying_a_known_beneficiary_scores_zero_and_is_allowed() -> None:
    result = score_risk(SETTLED, POLICY)

    assert (result.decision, result.score) == ("allow", 0)
    assert {f.name for f in result.factors} == {
        "velocity",
        "new_beneficiary",
        "amount_vs_history",
        "account_age",
        "failed_logins",
        "recent_security_change",
    }
    assert all(f.detail for f in result.factors)


@pytest.mark.parametrize(
    ("change", "factor", "points"),
    [
        ({"payments_last_hour": 5}, "velocity", 15),
        ({"new_beneficiary": True}, "new_beneficiary", 15),
        ({"amount": 3_000}, "amount_vs_history", 25),
        ({"amount": 10_000}, "amount_vs_history", 40),
        ({"history_count": 1}, "amount_vs_history", 10),
        ({"account_age_days": 3}, "account_age", 15),
        ({"account_age_days": 20}, "account_age", 5),
        ({"failed_logins_24h": 2}, "failed_logins", 10),
        ({"failed_logins_24h": 50}, "failed_logins", 25),
        ({"security_change_hours_ago": 5.0}, "recent_security_change", 25),
    ],
)
def test_each_factor_adds_its_points_alone(
    change: dict[str, Any], factor: str, points: int
) -> None:
    scored = _points(SETTLED.model_copy(update=change))

    assert scored[factor] == points
    assert sum(scored.values()) == points


def test_hard_rules_decide_before_the_score() -> None:
    too_big = score_risk(SETTLED.model_copy(update={"amount": 1_000_001}), POLICY)
    too_fast = score_risk(SETTLED.model_copy(update={"payments_last_hour": 10}), POLICY)
    large = score_risk(SETTLED.model_copy(update={"amount": 100_000}), POLICY)
    risky = score_risk(
        SETTLED.model_copy(
            update={
                "new_beneficiary": True,
                "account_age_days": 1,
                "failed_logins_24h": 5,
                "security_change_hours_ago": 1.0,
            }
        ),
        POLICY,
    )

    assert (too_big.decision, too_big.reason) == ("deny", "amount above the single-payment limit")
    assert (too_fast.decision, too_fast.reason) == ("deny", "too many payments in the last hour")
    assert (large.decision, large.reason) == ("review", "large amount: customer approval needed")
    assert risky.score == 80
    assert (risky.decision, risky.reason) == ("review", "risk score 80: customer approval needed")


async def _customer_with_transfer(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory, email: str
) -> tuple[Customer, str]:
    who = await register_customer(api, outbox, email)
    main = (await api.get("/api/accounts", headers=who.auth)).json()["items"][0]
    savings = await api.post(
        "/api/accounts", headers=who.auth, json={"currency": "EUR", "name": "Savings"}
    )
    assert savings.status_code == 201, savings.text
    await fund(sessions, main["id"], 100_000, "EUR")
    sent = await api.post(
        "/api/payments/transfer",
        headers=who.auth | {"Idempotency-Key": f"t-{email}"},
        json={
            "from_account_id": main["id"],
            "to_account_id": savings.json()["id"],
            "amount": "12.00",
            "currency": "EUR",
        },
    )
    assert sent.status_code in (201, 202), sent.text
    return who, str(sent.json()["id"])


async def test_the_api_and_the_workflows_activity_score_a_payment_alike(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    settings: Settings,
) -> None:
    ada, payment_id = await _customer_with_transfer(api, outbox, sessions, "ada@example.com")
    for _ in range(3):  # three wrong passwords: the failed-login factor
        wrong = await api.post(
            "/api/auth/login", json={"email": ada.email, "password": "not-the-password-1"}
        )
        assert wrong.status_code == 401

    answer = await api.post(
        "/api/security/risk/assess", headers=ada.auth, json={"payment_id": payment_id}
    )
    activity = PaymentActivities(
        sessions,
        max_single_payment_minor=settings.max_single_payment_minor,
        max_payments_per_hour=settings.max_payments_per_hour,
        review_threshold_minor=settings.payment_review_threshold_minor,
        review_score=settings.risk_review_score,
    )
    decided = await activity.assess_risk(
        RiskInput(
            payment_id=uuid.UUID(payment_id),
            user_id=uuid.UUID(answer.json()["customer_id"]),
            amount=1200,
            currency="EUR",
        )
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["decision"], body["score"]) == (decided.decision, decided.score)
    points = {f["name"]: f["points"] for f in body["factors"]}
    assert points["failed_logins"] == 15
    assert points["account_age"] == 15
    assert points["new_beneficiary"] == 15  # the only transfer there is this one
    assert body["score"] == sum(points.values())


async def test_another_customers_payment_is_a_404_for_a_customer_but_not_for_compliance(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    services: Services,
) -> None:
    ada, payment_id = await _customer_with_transfer(api, outbox, sessions, "ada@example.com")
    bob = await register_customer(api, outbox, "bob@example.com")
    compliance = await new_member(services, "comp@bank.example", StaffRole.COMPLIANCE)
    support = await new_member(services, "support@bank.example", StaffRole.SUPPORT)
    body = {"payment_id": payment_id}

    by_bob, by_support, by_compliance, own = await asyncio.gather(
        api.post("/api/security/risk/assess", headers=bob.auth, json=body),
        api.post("/api/security/risk/assess", headers=support.auth, json=body),
        api.post("/api/security/risk/assess", headers=compliance.auth, json=body),
        api.post("/api/security/risk/assess", headers=ada.auth, json=body),
    )

    assert by_bob.status_code == 404
    assert by_support.status_code == 404  # support reads customers only under break-glass
    assert by_compliance.status_code == 200
    assert own.status_code == 200
    assert by_compliance.json()["score"] == own.json()["score"]
    refused = await audit_rows(sessions, "risk.assess_refused")
    assert len(refused) == 2
    assert all(r.details == {"payment_id": payment_id} for r in refused)


async def test_the_beneficiary_comes_from_the_payment_row_when_not_given(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    who, first = await _customer_with_transfer(api, outbox, sessions, "bea@example.com")
    done = await api.get(f"/api/payments/{first}", headers=who.auth)
    assert done.json()["status"] == "completed", done.text  # the transfer waits for its ledger
    again = await api.post(
        "/api/payments/transfer",
        headers=who.auth | {"Idempotency-Key": "t-bea-2"},
        json={
            "from_account_id": done.json()["from_account_id"],
            "to_account_id": done.json()["to_account_id"],
            "amount": "3.00",
            "currency": "EUR",
        },
    )
    assert again.status_code in (201, 202), again.text
    assessed = await api.post(
        "/api/security/risk/assess", headers=who.auth, json={"payment_id": first}
    )
    user_id = uuid.UUID(assessed.json()["customer_id"])
    async with sessions() as session:
        # As the workflow's activity asks: the payment id alone.
        paid_before = await gather_facts(
            session, user_id=user_id, payment_id=uuid.UUID(again.json()["id"])
        )
        first_ever = await gather_facts(session, user_id=user_id, payment_id=uuid.UUID(first))
        someone_new = await gather_facts(
            session, user_id=user_id, payment_id=uuid.UUID(first), to_account_id=uuid.uuid4()
        )
        no_payment = await gather_facts(session, user_id=user_id)
    assert paid_before.new_beneficiary is False
    assert first_ever.new_beneficiary is False  # the second transfer to it has completed
    assert someone_new.new_beneficiary is True  # a given beneficiary wins over the row's
    assert no_payment.new_beneficiary is None
