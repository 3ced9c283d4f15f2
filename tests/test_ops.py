"""Health, readiness, metrics, the audit chain, schema drift and workflow visibility for ops."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from temporalio.client import Client

import models  # noqa: F401 - registers the tables
from core.db import SessionFactory, transaction
from core.email import MemoryEmailBackend
from models.audit import record_audit, verify_audit_chain
from tests.flows import register_customer, start_registration, wait_for_email


async def test_health_ready_and_metrics(api: httpx.AsyncClient) -> None:
    health = await api.get("/health")
    ready = await api.get("/ready")
    metrics = await api.get("/metrics")

    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "temporal": "ok"}
    assert "vortex_http_requests_total" in metrics.text


async def test_responses_carry_a_request_id(api: httpx.AsyncClient) -> None:
    echoed = await api.get("/health", headers={"X-Request-ID": "abc-123"})
    generated = await api.get("/health")

    assert echoed.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32


async def test_audit_log_is_hash_chained_and_append_only(
    sessions: SessionFactory, engine: AsyncEngine
) -> None:
    async with transaction(sessions) as session:
        for n in range(3):
            await record_audit(session, "test.event", subject=str(n), details={"n": n})
    async with sessions() as session:
        assert await verify_audit_chain(session) == 3

    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE audit_log SET action = 'forged'"))
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM audit_log"))


async def test_migrations_match_the_models(engine: AsyncEngine) -> None:
    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection)  # type: ignore[arg-type]
        return list(compare_metadata(context, SQLModel.metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)

    assert differences == []


async def test_registration_workflows_are_filterable_by_status_without_personal_data(
    api: httpx.AsyncClient, outbox: MemoryEmailBackend, temporal_client: Client
) -> None:
    done = await register_customer(api, outbox, "done@example.com")
    pending_id = await start_registration(api, "pending@example.com")
    await wait_for_email(outbox, "pending@example.com")

    async def ids_with(status: str) -> set[str]:
        query = f"WorkflowType = 'RegistrationWorkflow' AND VortexStatus = '{status}'"
        return {wf.id async for wf in temporal_client.list_workflows(query)}

    for _ in range(100):  # visibility is eventually consistent
        completed, waiting = (
            await ids_with("completed"),
            await ids_with("awaiting_email_verification"),
        )
        if f"registration-{done.registration_id}" in completed and (
            f"registration-{pending_id}" in waiting
        ):
            break
        await asyncio.sleep(0.1)
    assert f"registration-{done.registration_id}" in completed
    assert f"registration-{pending_id}" in waiting
    described = await temporal_client.get_workflow_handle(
        f"registration-{uuid.UUID(pending_id)}"
    ).describe()
    assert "example.com" not in str(described.typed_search_attributes)
    assert await described.static_summary() == (
        "User registration: email verification, then TOTP MFA"
    )
