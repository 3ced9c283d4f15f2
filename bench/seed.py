"""Benchmark customers: active users with funded accounts and minted tokens (no registration)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from activities.ledger import fund_account, open_account
from api.services import Services
from core.db import transaction
from models.identity.tables import User, UserStatus
from models.ledger.payloads import FundAccountInput, OpenAccountInput
from models.ledger.tables import AccountType


@dataclass(frozen=True)
class BenchCustomer:
    """An active user, an access token and two EUR accounts (the first funded)."""

    user_id: uuid.UUID
    token: str
    source: str
    dest: str
    dest_number: str


async def bench_customer(services: Services, *, token_ttl: int = 3600) -> BenchCustomer:
    """One active user with two EUR accounts, the first funded, and an access token."""
    user_id = uuid.uuid4()
    async with transaction(services.sessions) as session:
        session.add(
            User(
                id=user_id,
                email=f"bench-{user_id}@example.com",
                first_name="B",
                last_name="B",
                password_hash="!",  # noqa: S106 - no password: the benchmark mints a token
                status=UserStatus.ACTIVE,
                mfa_enabled=True,
            )
        )
        await session.flush()
        opened = [
            await open_account(
                session,
                OpenAccountInput(
                    idempotency_key=f"bench-{user_id}-{n}",
                    owner_user_id=user_id,
                    currency="EUR",
                    type=AccountType.CHECKING,
                    name=f"bench {n}",
                ),
            )
            for n in range(2)
        ]
        await fund_account(
            session,
            FundAccountInput(
                idempotency_key=f"bench-fund-{user_id}",
                account_id=opened[0].account_id,
                amount=10**12,
                currency="EUR",
            ),
        )
    token, _ = services.tokens.issue(user_id, "access", token_ttl, sid=str(uuid.uuid4()))
    source, dest = opened
    return BenchCustomer(user_id, token, str(source.account_id), str(dest.account_id), dest.number)
