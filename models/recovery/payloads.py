"""ReconcileRowsWorkflow and its activity's payloads (ids, counts and durations only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

RowKind = Literal["link", "registration"]
ROW_KINDS: tuple[RowKind, ...] = ("link", "registration")


class ReconcileRowsInput(BaseModel):
    """ReconcileRowsWorkflow arguments (from settings, via the `reconcile-rows` schedule)."""

    grace_seconds: float = 60.0  # a row younger than this may still be starting its workflow
    batch_size: int = Field(default=100, ge=1, le=1000)
    max_batches: int = Field(default=20, ge=1)  # per kind of row


class RecoverRowsInput(BaseModel):
    """One page of non-final rows of one kind, after a keyset position."""

    kind: RowKind
    grace_seconds: float
    limit: int
    after_created_at: datetime | None = None
    after_id: uuid.UUID | None = None


class RecoverRowsResult(BaseModel):
    """What one page did: workflows started, rows closed with a reason."""

    checked: int = 0
    started: list[uuid.UUID] = Field(default_factory=list)
    closed: list[uuid.UUID] = Field(default_factory=list)
    next_created_at: datetime | None = None  # None: this was the last page
    next_id: uuid.UUID | None = None


class ReconcileRowsResult(BaseModel):
    """ReconcileRowsWorkflow's result and `status` query answer, per kind of row."""

    checked: dict[str, int] = Field(default_factory=dict)
    started: dict[str, int] = Field(default_factory=dict)
    closed: dict[str, int] = Field(default_factory=dict)
    batches: int = 0
