"""API schemas for customer accounts and the account-closure workflow."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from models.auth_schemas import StrictModel
from models.ledger import AccountStatus, AccountType
from models.money_schemas import Money

AccountName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
CurrencyCode = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")
]


class AccountOpen(StrictModel):
    """Open an account: currency, product type and a name."""

    currency: CurrencyCode
    type: AccountType = AccountType.CHECKING
    name: AccountName


class AccountRename(StrictModel):
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


class AccountView(BaseModel):
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

    items: list[AccountView]


class AccountClosureInput(BaseModel):
    """AccountClosureWorkflow input: ids only."""

    account_id: uuid.UUID
    owner_user_id: uuid.UUID
    sweep_to_account_id: uuid.UUID | None = None


class AccountClosureState(BaseModel):
    """What the closure workflow's `status` query answers."""

    account_id: uuid.UUID
    status: str  # closing | closed | refused
    reason: str | None = None


class AccountClosed(BaseModel):
    """Result of closing an account."""

    account_id: uuid.UUID
    status: AccountStatus
    closed_at: datetime
    swept: Money | None = None
    sweep_to_account_id: uuid.UUID | None = None
    workflow_id: str
