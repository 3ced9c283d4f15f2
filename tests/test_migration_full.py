# ruff: noqa: F811 - pytest fixtures imported from tests.migration_support are parameter names
"""The whole strangler-fig migration of users, accounts and transactions behind the gateway,
with customers writing to the monolith all along; after the cutovers every legacy user logs in
through the gateway with their old password, balances and histories match, nothing is
duplicated and the ledger verifies."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import httpx
from sqlalchemy import text
from temporalio.client import Client

from activities.ledger.verify import verify_ledger
from api.services import Services
from core.db import SessionFactory
from core.settings import Settings
from legacysim.load import LegacyLoad
from legacysim.seed import SeedResult
from models.migration.tables import MigrationDomain, MigrationStage
from tests.cli_support import run_vortex
from tests.conftest import RunningWorkers
from tests.flows import Customer
from tests.migration_support import (  # noqa: F401 - fixtures
    gateway_in_front,
    legacy_balances,
    legacy_http,
    legacy_scalar,
    legacy_url,
    migrate,
    new_balances,
    scalar,
    seeded,
    settings,
)
from tests.replay_support import HISTORIES, replay_history
from workflows.migration import MigrationWorkflow


async def _until(check: Callable[[], bool], within: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


async def _first_login(api: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await api.post("/api/auth/login", json={"email": email, "password": password})


async def test_a_full_migration_under_load_keeps_every_user_balance_and_transaction(
    services: Services,
    workers: RunningWorkers,
    temporal_client: Client,
    settings: Settings,
    sessions: SessionFactory,
    legacy_url: str,
    legacy_http: httpx.AsyncClient,
) -> None:
    seed = await seeded(legacy_url, 6)
    async with gateway_in_front(services, str(legacy_http.base_url)) as gateway:
        # before any cutover the gateway sends logins to the monolith (its `username` shape)
        email, password = seed.credentials[0]
        legacy_login = await gateway.post(
            "/api/auth/login", json={"username": email, "password": password}
        )
        assert legacy_login.status_code == 200, legacy_login.text
        assert "token" in legacy_login.json()

        load = LegacyLoad(legacy_http, list(seed.credentials))
        stop = asyncio.Event()
        writer = asyncio.create_task(load.run(stop, pause=0.05))
        await _until(
            lambda: load.outcomes["signup:201"] >= 1 and load.outcomes["transaction:201"] >= 3
        )
        handles = []
        refused_after = {
            MigrationDomain.USERS: "signup:423",
            MigrationDomain.ACCOUNTS: "transaction:423",
            MigrationDomain.TRANSACTIONS: "transaction:423",
        }
        for domain in MigrationDomain:
            handle, result = await migrate(temporal_client, settings, domain)
            assert result.cut_over, result
            handles.append(handle)
            await _until(lambda: load.outcomes[refused_after[domain]] >= 1)  # noqa: B023
        stop.set()
        await writer

        # the monolith took writes all along, and refused each domain's once it moved
        assert load.outcomes["transaction:201"] > 0
        assert load.outcomes["signup:201"] > 0
        assert load.outcomes["transaction:423"] > 0
        assert load.outcomes["signup:423"] > 0
        assert load.outcomes["transaction:201"] + load.outcomes["transaction:409"] + load.outcomes[
            "transaction:423"
        ] == sum(v for k, v in load.outcomes.items() if k.startswith("transaction:"))

        await _balances_and_history_match(sessions, settings, legacy_url, seed.accounts)
        await _old_passwords_log_in_through_the_gateway(gateway, sessions, seed, load)

    for handle in handles:
        progress = await handle.query(MigrationWorkflow.progress)
        assert progress.stage == MigrationStage.CUT_OVER
    history = await handles[1].fetch_history()
    if os.environ.get("VORTEX_RECORD_HISTORIES"):  # refresh the golden file deliberately
        (HISTORIES / "migration_accounts_cut_over.json").write_text(history.to_json())
    await replay_history(history, MigrationWorkflow)


async def _balances_and_history_match(
    sessions: SessionFactory, settings: Settings, legacy_url: str, seeded_accounts: int
) -> None:
    """Balances equal, history complete, nothing twice, the ledger verifies."""
    async with sessions() as session:
        reasons = (
            await session.execute(
                text("SELECT domain, legacy_id, reason, detail FROM migration_quarantine")
            )
        ).all()
    assert not reasons
    assert await new_balances(sessions) == await legacy_balances(legacy_url)
    legacy_tx = await legacy_scalar(legacy_url, "SELECT count(*) FROM transactions")
    assert await scalar(sessions, "SELECT count(*) FROM transactions WHERE kind = 'migrated'") == (
        legacy_tx
    )
    legacy_users = await legacy_scalar(legacy_url, "SELECT count(*) FROM users")
    assert await scalar(sessions, "SELECT count(*) FROM users") == legacy_users
    assert (
        await scalar(sessions, "SELECT count(*) FROM migration_identities WHERE domain = 'users'")
        == legacy_users
    )
    assert (
        await scalar(
            sessions, "SELECT count(DISTINCT external_id) FROM transactions WHERE kind = 'migrated'"
        )
        == legacy_tx
    )
    opened = await scalar(
        sessions,
        "SELECT count(*) FROM journal_entries WHERE idempotency_key LIKE :p",
        p="%:opening",
    )
    legacy_accounts = await legacy_scalar(legacy_url, "SELECT count(*) FROM accounts")
    # one opening per seeded account (all funded), at most one per account in all
    assert seeded_accounts <= opened <= legacy_accounts
    assert (await verify_ledger(sessions)).ok
    code, out = await run_vortex(settings, "ledger", "verify")
    assert code == 0, out


async def _old_passwords_log_in_through_the_gateway(
    gateway: httpx.AsyncClient, sessions: SessionFactory, seed: SeedResult, load: LegacyLoad
) -> None:
    """After the users' cutover `/api/auth` is the new side's: every legacy user's old password
    works there (MFA set up at the first login), and the new API answers through the gateway."""
    for email, password in load.credentials:
        first = await _first_login(gateway, email, password)
        assert first.status_code == 403, first.text
        assert first.json()["type"].endswith("/mfa-setup-required")
    assert (
        await _first_login(gateway, seed.credentials[0][0], "not-the-password")
    ).status_code == 401
    rehashed = await scalar(
        sessions, "SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$%'"
    )
    assert rehashed == len(load.credentials)

    # one of them finishes the MFA setup, then logs in with password + TOTP like anyone
    email, password = seed.credentials[0]
    token = (await _first_login(gateway, email, password)).json()["registration_token"]
    reg_auth = {"Authorization": f"Bearer {token}"}
    setup = await gateway.post("/api/auth/mfa/setup", headers=reg_auth)
    assert setup.status_code == 200, setup.text
    customer = Customer(email, password, setup.json()["secret"], [], "", "", "")
    done = await gateway.post(
        "/api/auth/mfa/verify", headers=reg_auth, json={"code": customer.fresh_totp()}
    )
    assert done.status_code == 200, done.text
    headers = {"Authorization": f"Bearer {done.json()['access_token']}"}
    accounts = (await gateway.get("/api/accounts", headers=headers)).json()
    assert accounts["items"], accounts  # the migrated accounts, from the new side
    login = await gateway.post(
        "/api/auth/login",
        json={"email": email, "password": password, "totp_code": customer.fresh_totp()},
    )
    assert login.status_code == 200, login.text
