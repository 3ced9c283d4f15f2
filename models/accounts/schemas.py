"""API schemas for customer accounts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from models.base import StrictModel
from models.ledger.tables import AccountStatus, AccountType
from models.money import Money
from models.text import SINGLE_LINE

AccountName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), SINGLE_LINE
]


CurrencyCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$"),
    SINGLE_LINE,
]


class AccountCreate(StrictModel):
    """Open an account: currency, product type and a name."""

    currency: CurrencyCode
    type: AccountType = AccountType.CHECKING
    name: AccountName


class AccountUpdate(StrictModel):
    """Only the name of an account can be changed."""

    name: AccountName


class Balance(BaseModel):
    """Posted, held and available (= posted - held) amounts at a point in time."""

    account_id: uuid.UUID
    currency: str
    posted: Money
    held: Money
    available: Money
    as_of: datetime


class AccountPublic(BaseModel):
    """A customer account with its balance."""

    id: uuid.UUID
    number: str
    name: str
    type: AccountType
    currency: str
    status: AccountStatus
    balance: Balance
    opened_at: datetime
    closed_at: datetime | None = None


class AccountList(BaseModel):
    """The caller's accounts."""

    items: list[AccountPublic]


class AccountClosed(BaseModel):
    """Result of closing an account."""

    account_id: uuid.UUID
    status: AccountStatus
    closed_at: datetime
    swept: Money | None = None
    sweep_to_account_id: uuid.UUID | None = None
    workflow_id: str
