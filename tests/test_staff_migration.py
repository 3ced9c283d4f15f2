# ruff: noqa: F811 - pytest fixtures imported from tests.migration_support are parameter names
"""Staff control of the legacy migration (`/api/staff/migrations`, ops role, audited): status of
every domain, start in dependency order, pause and resume, refusals as 409 problems, cutover
and finalize; and `vortex legacy-migration` answering from the same functions."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import col

from api.services import Services
from core.settings import Settings
from models.audit import AuditEvent
from models.staff.tables import StaffRole
from tests.cli_support import run_vortex
from tests.conftest import RunningWorkers
from tests.migration_support import legacy_url, seeded, settings  # noqa: F401 - fixtures
from tests.security_support import new_member

URL = "/api/staff/migrations"
WHY = {"reason": "INC-42 migration window"}


async def _users_status(api: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    answer = await api.get(f"{URL}/users", headers=auth)
    assert answer.status_code == 200, answer.text
    status: dict[str, Any] = answer.json()
    return status


async def _until(api: httpx.AsyncClient, auth: dict[str, str], stage: str) -> dict[str, Any]:
    for _ in range(600):
        status = await _users_status(api, auth)
        if status["stage"] == stage:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"users never reached {stage}: {status}")


async def test_customers_and_support_staff_get_404(
    api: httpx.AsyncClient, services: Services
) -> None:
    customer = await new_member(services, "cu@example.com", None)
    support = await new_member(services, "support@bank.example", StaffRole.SUPPORT)

    for auth in ({}, customer.auth, support.auth):
        assert (await api.get(URL, headers=auth)).status_code == 404
        started = await api.post(f"{URL}/users/start", headers=auth, json=WHY)
        assert started.status_code == 404


async def test_ops_drive_a_migration_through_the_routes_and_every_action_is_audited(
    api: httpx.AsyncClient,
    services: Services,
    workers: RunningWorkers,
    settings: Settings,
    legacy_url: str,
) -> None:
    await seeded(legacy_url, 5)
    ops = await new_member(services, "ops@bank.example", StaffRole.OPS)

    listed = await api.get(URL, headers=ops.auth)
    assert listed.status_code == 200, listed.text
    assert [(d["domain"], d["stage"], d["running"]) for d in listed.json()["items"]] == [
        ("users", None, False),
        ("accounts", None, False),
        ("transactions", None, False),
    ]

    early = await api.post(f"{URL}/accounts/start", headers=ops.auth, json=WHY)
    assert early.status_code == 409
    assert early.json()["type"].endswith("/migration-refused")
    assert "users must be cut over" in early.json()["detail"]

    started = await api.post(f"{URL}/users/start", headers=ops.auth, json=WHY)
    assert started.status_code == 202, started.text
    assert started.json()["outcome"] == "started"
    caught_up = await _until(api, ops.auth, "catching_up")
    assert caught_up["running"]
    assert caught_up["backfilled"] == 5
    assert caught_up["progress"]["total_estimate"] == 5

    cli = await run_vortex(settings, "legacy-migration", "status")
    assert cli[0] == 0, cli[1]
    assert "users: catching_up" in cli[1]
    assert "accounts: not started" in cli[1]

    paused = await api.post(f"{URL}/users/pause", headers=ops.auth, json=WHY)
    assert paused.status_code == 202
    for _ in range(100):
        if (await _users_status(api, ops.auth))["progress"]["paused"]:
            break
        await asyncio.sleep(0.1)
    refused = await api.post(f"{URL}/users/cutover", headers=ops.auth, json=WHY)
    assert refused.status_code == 409
    assert "not paused" in refused.json()["detail"]
    assert (await api.post(f"{URL}/users/resume", headers=ops.auth, json=WHY)).status_code == 202
    not_cut = await api.post(f"{URL}/users/rollback", headers=ops.auth, json=WHY)
    assert not_cut.status_code == 409

    for _ in range(100):  # the resume reached the workflow
        if not (await _users_status(api, ops.auth))["progress"]["paused"]:
            break
        await asyncio.sleep(0.1)
    cut = await api.post(f"{URL}/users/cutover", headers=ops.auth, json=WHY, timeout=60)
    assert cut.status_code == 200, cut.text
    assert cut.json()["outcome"] == "cut over"
    assert cut.json()["verification"]["checks"]
    final = await api.post(f"{URL}/users/finalize", headers=ops.auth, json=WHY, timeout=60)
    assert final.status_code == 200, final.text
    after = await _users_status(api, ops.auth)
    assert after["stage"] == "finalized"
    assert not after["running"]  # the run ended: the stored row answers
    assert after["backfilled"] == 5

    async with services.reads() as session:
        audited = (
            await session.execute(
                select(col(AuditEvent.action), col(AuditEvent.details))
                .where(col(AuditEvent.action).startswith("staff.migration_"))
                .order_by(col(AuditEvent.id))
            )
        ).all()
    assert [a for a, _ in audited] == [
        "staff.migration_start",
        "staff.migration_start",
        "staff.migration_pause",
        "staff.migration_cutover",
        "staff.migration_resume",
        "staff.migration_rollback",
        "staff.migration_cutover",
        "staff.migration_finalize",
    ]
    assert all(d["reason"] == WHY["reason"] for _, d in audited)
    assert audited[0][1]["outcome"].startswith("refused:")


async def test_bad_migration_requests_are_refused_and_change_nothing(
    api: httpx.AsyncClient, services: Services
) -> None:
    ops = await new_member(services, "ops@bank.example", StaffRole.OPS)

    no_reason = await api.post(f"{URL}/users/start", headers=ops.auth, json={})
    unknown_domain = await api.post(f"{URL}/ledger/start", headers=ops.auth, json=WHY)
    unknown_action = await api.post(f"{URL}/users/explode", headers=ops.auth, json=WHY)
    not_running = await api.post(f"{URL}/users/pause", headers=ops.auth, json=WHY)

    assert [no_reason.status_code, unknown_domain.status_code, unknown_action.status_code] == [
        422,
        422,
        422,
    ]
    assert not_running.status_code == 409
    assert "not running" in not_running.json()["detail"]
    listed = (await api.get(URL, headers=ops.auth)).json()["items"]
    assert all(d["stage"] is None for d in listed)
