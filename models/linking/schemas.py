"""API schemas for linked external accounts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from models.base import StrictModel
from models.linking.payloads import DepositsState
from models.linking.tables import LinkStatus
from models.text import SINGLE_LINE

AmountText = Annotated[str, Field(min_length=1, max_length=20), SINGLE_LINE]


HolderName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140), SINGLE_LINE
]
"""The external account holder's name (NFC: it is matched against the rail's name)."""


class LinkedAccountCreate(StrictModel):
    """POST /api/accounts/{id}/link: the external account to verify."""

    iban: Annotated[str, Field(min_length=1, max_length=64), SINGLE_LINE]
    holder_name: HolderName


class LinkAccepted(BaseModel):
    """202 answer: the link is being verified; follow `status_url`."""

    linked_account_id: uuid.UUID
    status: LinkStatus
    status_url: str


class ConfirmLinkBody(StrictModel):
    """The two micro-deposit amounts as decimal strings, in any order."""

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
