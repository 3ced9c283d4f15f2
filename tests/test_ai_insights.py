"""AI routes over the customer's own ledger: categorization tiers (memory learned from a
correction, the trained model), the training workflow, recommendations, behaviour, insights."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client

from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.settings import Settings
from models.ai.payloads import TrainCategorizerInput, TrainingResult
from models.ledger.tables import OutboxEvent
from tests.ai_support import ai_settings, days_ago, new_shopper, seed
from tests.replay_support import HISTORIES, recorded, replay, replay_history
from workflows.categorizer_training import CategorizerTrainingWorkflow


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No LLM endpoint: the local engine (the LLM tier is skipped)."""
    return ai_settings(settings, None)


async def test_categorization_learns_from_a_correction(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    shopper = await new_shopper(api, outbox, sessions)
    first, second = await seed(
        sessions,
        shopper,
        [(2500, "Zorblax Ltd", None, days_ago(9)), (2700, "Zorblax Ltd", None, days_ago(2))],
    )
    before = await api.post(
        "/api/ai/categorize/transaction", headers=shopper.auth, json={"transaction_id": str(second)}
    )
    assert before.status_code == 200, before.text
    assert before.json()["source"] == "default"

    corrected = await api.post(
        f"/api/transactions/{first}/categorize",
        headers=shopper.auth,
        json={"category": "entertainment"},
    )
    assert corrected.status_code == 200, corrected.text

    after = await api.post(
        "/api/ai/categorize/transaction",
        headers=shopper.auth,
        json={"transaction_id": str(second), "apply": True},
    )
    body = after.json()
    assert (body["category"], body["source"], body["applied"]) == ("entertainment", "memory", True)
    assert body["confidence"] > 0.9
    row = (await api.get(f"/api/transactions/{second}", headers=shopper.auth)).json()
    assert row["category"] == "entertainment"
    rules = await api.post(
        "/api/ai/categorize/transaction", headers=shopper.auth, json={"merchant": "Tesco Metro"}
    )
    assert (rules.json()["category"], rules.json()["source"]) == ("groceries", "rules")


_LABELED = {
    "Kwikfit Garage": "transport",
    "Zumba Studio": "health",
    "Pet Planet": "shopping",
    "Greenleaf Deli": "groceries",
    "Tesco": "groceries",
    "Netflix": "entertainment",
}


async def test_the_training_workflow_stores_a_model_that_beats_the_rules_and_uses_it(
    api: httpx.AsyncClient,
    outbox: MemoryEmailBackend,
    sessions: SessionFactory,
    temporal_client: Client,
    settings: Settings,
) -> None:
    shopper = await new_shopper(api, outbox, sessions)
    rows = [
        (1000 + i, f"{merchant} {i}", category, days_ago(i % 300))
        for i in range(240)
        for merchant, category in [list(_LABELED.items())[i % len(_LABELED)]]
    ]
    await seed(sessions, shopper, rows)

    handle = await temporal_client.start_workflow(
        "CategorizerTrainingWorkflow",
        TrainCategorizerInput(min_rows=50),
        id=f"categorizer-training-{uuid.uuid4()}",
        task_queue=settings.task_queue,
        result_type=TrainingResult,
    )
    result = await handle.result()

    assert result.version == 1
    assert result.active
    assert result.accuracy is not None
    assert result.rules_accuracy is not None
    assert result.accuracy > result.rules_accuracy
    assert result.holdout_rows > 20
    history = await handle.fetch_history()
    await replay_history(history, CategorizerTrainingWorkflow)
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "categorizer_training_activated.json").write_text(history.to_json())

    unseen = await api.post(
        "/api/ai/categorize/transaction",
        headers=shopper.auth,
        json={"merchant": "Zumba Studio Mitte"},
    )
    assert (unseen.json()["category"], unseen.json()["source"]) == ("health", "model")
    assert unseen.json()["model_version"] == 1
    batch = await api.post("/api/ai/categorize/batch", headers=shopper.auth, json={"limit": 5})
    assert batch.status_code == 200, batch.text


async def test_too_little_history_stores_no_model(
    api: httpx.AsyncClient, temporal_client: Client, settings: Settings
) -> None:
    result = await temporal_client.execute_workflow(
        "CategorizerTrainingWorkflow",
        TrainCategorizerInput(min_rows=50),
        id=f"categorizer-training-{uuid.uuid4()}",
        task_queue=settings.task_queue,
        result_type=TrainingResult,
    )
    assert result.version is None
    assert not result.active


async def test_a_subscription_and_an_anomaly_are_found_in_seeded_data(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    shopper = await new_shopper(api, outbox, sessions)
    netflix = await seed(
        sessions,
        shopper,
        [(1599, "Netflix", "entertainment", days_ago(5 + 30 * k)) for k in range(6)],
    )
    await seed(
        sessions,
        shopper,
        [(4000 + (k % 5) * 100, "Lidl", "groceries", days_ago(40 + 15 * k)) for k in range(20)],
    )
    (odd,) = await seed(sessions, shopper, [(90_000, "Lidl", "groceries", days_ago(3, hour=3))])

    recs = (await api.get("/api/ai/recommendations", headers=shopper.auth)).json()["items"]
    subscription = next(r for r in recs if r["title"] == "Recurring payment to Netflix")
    assert subscription["kind"] == "subscription"
    assert subscription["amount"]["amount"] == "15.99"
    assert subscription["evidence"]["interval_days"] == 30
    assert set(subscription["evidence"]["transaction_ids"]) == {str(i) for i in netflix}

    analysis = await api.post("/api/ai/analyze/behavior", headers=shopper.auth, json={})
    assert analysis.status_code == 200, analysis.text
    anomalies = analysis.json()["anomalies"]
    assert [a["transaction_id"] for a in anomalies] == [str(odd)]
    reasons = " ".join(anomalies[0]["reasons"])
    assert "robust deviations above your median groceries payment" in reasons
    assert "03:00 UTC" in reasons


async def test_a_spending_insight_compares_periods_and_announces_itself(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    shopper = await new_shopper(api, outbox, sessions)
    await seed(
        sessions,
        shopper,
        [
            (3000, "Sushi Bar", "dining", days_ago(3)),
            (2000, "Pizza Place", "dining", days_ago(10)),
            (1000, "Sushi Bar", "dining", days_ago(40)),
        ],
    )
    response = await api.post(
        "/api/ai/insights/spending", headers=shopper.auth, json={"period": "month"}
    )
    assert response.status_code == 200, response.text
    insight = response.json()
    assert insight["total"]["amount"] == "50.00"
    assert insight["previous_total"]["amount"] == "10.00"
    assert insight["categories"][0]["change_percent"] == 400.0
    assert "you spent 50.00 EUR" in insight["narrative"]
    async with sessions() as session:
        events = (
            (
                await session.execute(
                    select(OutboxEvent).where(col(OutboxEvent.type) == "ai.insight.ready")
                )
            )
            .scalars()
            .all()
        )
    assert [e.payload["insight_id"] for e in events] == [insight["insight_id"]]


BAD_INPUT = [
    ("/api/ai/insights/spending", {"period": "fortnight"}, "validation"),
    ("/api/ai/insights/spending", {"start": "2026-05-01", "end": "2026-04-01"}, "invalid-period"),
    ("/api/ai/insights/spending", {"start": "2026-05-01"}, "invalid-period"),
    ("/api/ai/insights/spending", {"start": "2020-01-01", "end": "2026-01-01"}, "invalid-period"),
    ("/api/ai/insights/spending", {"period": "month", "category": "yachts"}, "invalid-category"),
    ("/api/ai/analyze/behavior", {"start": "2026-05-01", "end": "2026-05-01"}, "invalid-period"),
    ("/api/ai/categorize/transaction", {}, "invalid-categorize-request"),
    ("/api/ai/categorize/transaction", {"merchant": "x", "apply": True}, "invalid-categorize"),
]


async def test_bad_ai_input_is_a_problem_and_changes_nothing(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    shopper = await new_shopper(api, outbox, sessions)
    for path, body, problem in BAD_INPUT:
        response = await api.post(path, headers=shopper.auth, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert problem in response.json()["type"], (path, body)
    async with sessions() as session:
        assert (
            await session.execute(
                select(col(OutboxEvent.id)).where(col(OutboxEvent.type) == "ai.insight.ready")
            )
        ).first() is None


async def test_another_customers_transaction_is_not_found(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, sessions: SessionFactory
) -> None:
    ada = await new_shopper(api, outbox, sessions)
    bob = await new_shopper(api, outbox, sessions, email="bob@example.com")
    (theirs,) = await seed(sessions, ada, [(100, "Cafe", "dining", days_ago(1))])
    response = await api.post(
        "/api/ai/categorize/transaction", headers=bob.auth, json={"transaction_id": str(theirs)}
    )
    assert response.status_code == 404


@pytest.mark.parametrize("path", recorded("CategorizerTrainingWorkflow"), ids=lambda p: p.stem)
async def test_recorded_training_histories_still_replay(path: object) -> None:
    from pathlib import Path

    assert isinstance(path, Path)
    await replay(path, CategorizerTrainingWorkflow)


def test_the_training_runs_on_a_project_schedule(settings: Settings) -> None:
    from temporal.schedules import project_schedules

    (training,) = [s for s in project_schedules(settings) if s.id.endswith("categorizer-training")]
    assert training.workflow == "CategorizerTrainingWorkflow"
    assert isinstance(training.arg, TrainCategorizerInput)
    assert training.arg.min_rows == settings.ai_training_min_rows
