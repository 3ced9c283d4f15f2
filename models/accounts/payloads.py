"""AccountClosureWorkflow payloads."""

from __future__ import annotations

import uuid

from pydantic import BaseModel


class AccountClosureInput(BaseModel):
    """AccountClosureWorkflow input: ids only."""

    account_id: uuid.UUID
    owner_user_id: uuid.UUID
    sweep_to_account_id: uuid.UUID | None = None
    activity_timeout_seconds: float | None = None  # None: the default database step timeout


class AccountClosureState(BaseModel):
    """What the closure workflow's `status` query answers."""

    account_id: uuid.UUID
    status: str  # closing | closed | refused
    reason: str | None = None
