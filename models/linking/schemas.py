"""API schemas for linked external accounts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.linking.payloads import DepositsState
from models.linking.tables import LinkStatus

AmountText = Annotated[str, Field(min_length=1, max_length=20)]


class LinkedAccountCreate(BaseModel):
    """POST /api/accounts/{id}/link: the external account to verify."""

    model_config = ConfigDict(extra="forbid")

    iban: Annotated[str, Field(min_length=1, max_length=64)]
    holder_name: Annotated[str, Field(min_length=1, max_length=140)]


class LinkAccepted(BaseModel):
    """202 answer: the link is being verified; follow `status_url`."""

    linked_account_id: uuid.UUID
    status: LinkStatus
    status_url: str


class ConfirmLinkBody(BaseModel):
    """The two micro-deposit amounts as decimal strings, in any order."""

    model_config = ConfigDict(extra="forbid")

    amounts: Annotated[list[AmountText], Field(min_length=2, max_length=2)]


class LinkedAccountPublic(BaseModel):
    """A linked account; the live fields come from the workflow while it runs."""

    id: uuid.UUID
    account_id: uuid.UUID
    iban_masked: str
    holder_name: str
    status: LinkStatus
    attempts_left: int | None = None
    deposits: DepositsState | None = None
    expires_at: datetime | None = None
    failure_reason: str | None = None
    source: Literal["workflow", "database"] = "database"
    created_at: datetime
    updated_at: datetime
    status_url: str


class LinkedAccountList(BaseModel):
    """The links of one account, newest first."""

    items: list[LinkedAccountPublic]
