# ruff: noqa: F811 - pytest fixtures imported from tests.migration_support are parameter names
"""Operating a migration: pause and resume, rollback before the point of no return (and its
refusal after), quarantined legacy rows, a cutover refused while verification fails, and the
recorded history still replaying."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client

from activities.ledger import fund_account
from activities.migration.control import PROGRESS_QUERY_TIMEOUT, domain_statuses
from cli.legacy_migration import _status_line
from core.db import SessionFactory, transaction
from core.settings import Settings
from models.ledger.payloads import FundAccountInput
from models.migration.tables import MigrationDomain, MigrationStage
from tests.conftest import RunningWorkers
from tests.migration_support import (  # noqa: F401 - fixtures
    caught_up,
    legacy_http,
    legacy_scalar,
    legacy_url,
    migrate,
    scalar,
    seeded,
    settings,
    start,
    wait_for,
)
from tests.replay_support import recorded, replay
from workflows.migration import MigrationWorkflow


async def _routes(sessions: SessionFactory) -> dict[str, tuple[str, bool]]:
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT prefix, mode, legacy_writes_frozen FROM gateway_routes")
        )
        return {r.prefix: (r.mode, r.legacy_writes_frozen) for r in rows}


async def _signup(legacy_http: httpx.AsyncClient, email: str) -> int:
    answer = await legacy_http.post(
        "/api/auth/signup", json={"email": email, "password": "pw-123456", "full_name": "A B"}
    )
    return answer.status_code


async def test_a_paused_backfill_imports_nothing_until_resumed(
    workers: RunningWorkers,
    temporal_client: Client,
    settings: Settings,
    sessions: SessionFactory,
    legacy_url: str,
) -> None:
    await seeded(legacy_url, 5)
    handle = await start(temporal_client, settings, MigrationDomain.USERS, paused=True)
    paused = await wait_for(handle, lambda p: p.total_estimate == 5)
    assert paused.paused
    assert paused.stage == MigrationStage.BACKFILLING
    assert paused.backfilled == 0
    assert await scalar(sessions, "SELECT count(*) FROM users") == 0

    await handle.signal(MigrationWorkflow.resume)
    done = await caught_up(handle)
    assert done.backfilled == 5
    assert done.eta_seconds == 0.0
    await handle.signal(MigrationWorkflow.pause)
    assert (await wait_for(handle, lambda p: p.paused)).stage == MigrationStage.CATCHING_UP
    refused = await _cutover_error(handle)
    assert "not paused" in refused
    await handle.signal(MigrationWorkflow.resume)
    await handle.signal(MigrationWorkflow.abort)
    result = await asyncio.wait_for(handle.result(), 60)
    assert result.stage == MigrationStage.ABORTED
    assert await scalar(sessions, "SELECT count(*) FROM users") == 5  # what was imported stays


async def test_status_shows_the_stored_run_when_no_worker_answers_the_progress_query(
    workers: RunningWorkers,
    temporal_client: Client,
    settings: Settings,
    sessions: SessionFactory,
    legacy_url: str,
) -> None:
    await seeded(legacy_url, 3)
    handle = await start(temporal_client, settings, MigrationDomain.USERS, paused=True)
    await wait_for(handle, lambda p: p.total_estimate == 3)
    (live,) = await domain_statuses(temporal_client, sessions, MigrationDomain.USERS)
    assert live.progress is not None
    assert live.progress.paused
    assert not live.unanswered

    await asyncio.gather(*(w.shutdown() for w in workers.workers))  # every worker down
    started = asyncio.get_running_loop().time()
    (stored,) = await domain_statuses(temporal_client, sessions, MigrationDomain.USERS)
    waited = asyncio.get_running_loop().time() - started
    assert stored.unanswered
    assert stored.progress is None
    assert stored.run is not None
    assert stored.run.workflow_id == handle.id
    assert stored.run.stage == MigrationStage.BACKFILLING
    assert waited < PROGRESS_QUERY_TIMEOUT.total_seconds() + 5  # bounded, not a hang
    line = _status_line(stored)
    assert "no worker answered" in line
    assert "backfilling" in line
    await handle.terminate("test over")


async def _cutover_error(handle: object) -> str:
    from temporalio.client import WorkflowUpdateFailedError

    try:
        await handle.execute_update(MigrationWorkflow.cutover)  # type: ignore[attr-defined]
    except WorkflowUpdateFailedError as exc:
        return str(exc.cause)
    raise AssertionError("the cutover was accepted")


async def test_rollback_is_possible_until_the_new_side_takes_a_write(
    api: httpx.AsyncClient,
    workers: RunningWorkers,
    temporal_client: Client,
    settings: Settings,
    sessions: SessionFactory,
    legacy_url: str,
    legacy_http: httpx.AsyncClient,
) -> None:
    seed = await seeded(legacy_url, 3)
    handle, result = await migrate(temporal_client, settings, MigrationDomain.USERS)
    assert result.cut_over
    assert (await _routes(sessions))["/api/auth"] == ("new", True)
    assert await _signup(legacy_http, "late@legacy.example") == 423

    rolled = await handle.execute_update(MigrationWorkflow.rollback)
    assert rolled.rolled_back, rolled
    assert (await _routes(sessions))["/api/auth"] == ("legacy", False)
    assert await _signup(legacy_http, "late@legacy.example") == 201  # the monolith writes again
    back = await wait_for(handle, lambda p: p.backfilled == 4)  # caught up with the sign-up
    assert back.stage == MigrationStage.CATCHING_UP

    again = await handle.execute_update(MigrationWorkflow.cutover)
    assert again.cut_over
    email, password = seed.credentials[0]
    login = await api.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 403  # mfa setup required: the hash was rehashed, a write
    refused = await handle.execute_update(MigrationWorkflow.rollback)
    assert not refused.rolled_back
    assert "point of no return" in refused.reason
    assert (await _routes(sessions))["/api/auth"] == ("new", True)

    final = await handle.execute_update(MigrationWorkflow.finalize)
    assert final.stage == MigrationStage.FINALIZED
    assert (await asyncio.wait_for(handle.result(), 60)).stage == MigrationStage.FINALIZED


async def test_invalid_legacy_rows_are_quarantined_and_never_become_money(
    workers: RunningWorkers,
    temporal_client: Client,
    settings: Settings,
    sessions: SessionFactory,
    legacy_url: str,
    legacy_http: httpx.AsyncClient,
) -> None:
    await seeded(legacy_url, 3, invalid=True)
    _, users = await migrate(temporal_client, settings, MigrationDomain.USERS)
    assert users.cut_over, users
    accounts = await start(temporal_client, settings, MigrationDomain.ACCOUNTS)
    await caught_up(accounts)

    # the new side moved money on its own: the balances differ, so the cutover is refused
    account_id = await scalar(
        sessions, "SELECT new_id FROM migration_identities WHERE domain = 'accounts' LIMIT 1"
    )
    async with transaction(sessions) as session:
        await fund_account(
            session,
            FundAccountInput(
                idempotency_key="test:drift",
                account_id=account_id,
                amount=100,
                currency=await scalar(
                    sessions, "SELECT currency FROM ledger_accounts WHERE id = :id", id=account_id
                ),
                reason="drift",
            ),
        )
    refused = await accounts.execute_update(MigrationWorkflow.cutover)
    assert not refused.cut_over
    assert "balances" in refused.reason
    assert await legacy_scalar(legacy_url, "SELECT count(*) FROM frozen_domains") == 1  # users
    assert (await _routes(sessions))["/api/accounts"][1] is False  # thawed again

    await _undo_drift(sessions, account_id)
    _, transactions_refused = await _start_too_early(temporal_client, settings)
    assert "must be cut over" in transactions_refused
    done = await accounts.execute_update(MigrationWorkflow.cutover)
    assert done.cut_over, done
    _, history = await migrate(temporal_client, settings, MigrationDomain.TRANSACTIONS)
    assert history.cut_over, history

    async with sessions() as session:
        reasons = {
            (r.domain, r.reason)
            for r in await session.execute(text("SELECT domain, reason FROM migration_quarantine"))
        }
    assert reasons == {
        ("users", "bad_email"),
        ("accounts", "negative_balance"),
        ("accounts", "unknown_currency"),
        ("transactions", "orphan_transaction"),
    }
    quarantined_money = await scalar(
        sessions,
        "SELECT count(*) FROM migration_quarantine q JOIN migration_identities m "
        "ON m.domain = q.domain AND m.legacy_id = q.legacy_id",
    )
    assert quarantined_money == 0
    assert (
        await scalar(sessions, "SELECT count(*) FROM ledger_accounts WHERE currency = 'XXZ'") == 0
    )


async def _undo_drift(sessions: SessionFactory, account_id: object) -> None:
    from activities.ledger import post_entry
    from models.ledger.payloads import EntryLeg, PostEntryInput

    currency = await scalar(
        sessions, "SELECT currency FROM ledger_accounts WHERE id = :id", id=account_id
    )
    settlement = await scalar(
        sessions,
        "SELECT id FROM ledger_accounts WHERE kind = 'external_settlement' AND currency = :c",
        c=currency,
    )
    async with transaction(sessions) as session:
        await post_entry(
            session,
            PostEntryInput(
                idempotency_key="test:undo-drift",
                legs=[
                    EntryLeg(account_id=account_id, amount=-100, currency=currency),
                    EntryLeg(account_id=settlement, amount=100, currency=currency),
                ],
            ),
        )


async def _start_too_early(client: Client, settings: Settings) -> tuple[None, str]:
    from temporalio.client import WorkflowFailureError

    handle = await start(client, settings, MigrationDomain.TRANSACTIONS)
    try:
        await asyncio.wait_for(handle.result(), 60)
    except WorkflowFailureError as exc:
        return None, str(exc.cause.__cause__ if exc.cause else exc)
    raise AssertionError("transactions started before accounts were cut over")


@pytest.mark.parametrize("path", recorded("MigrationWorkflow"), ids=lambda p: p.stem)
async def test_recorded_migration_histories_still_replay(path: Path) -> None:
    await replay(path, MigrationWorkflow)
