"""Request bodies and responses of the staff, security and self-service routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from models.accounts.schemas import CurrencyCode
from models.base import StrictModel
from models.money import Money
from models.payments.schemas import AccountNumber, AmountText
from models.security.payloads import RiskFactor
from models.security.tables import FreezeKind, IncidentSeverity, IncidentStatus
from models.text import NOTE, SINGLE_LINE

# A reason is required wherever staff act (kept in the audit log): one line, not blank.
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500), SINGLE_LINE
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), SINGLE_LINE]
LongNote = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000), NOTE
]
TotpCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]


class ReasonBody(StrictModel):
    """A staff action that changes something: why (audited)."""

    reason: Reason


class ResolveBody(StrictModel):
    """Ops: force the outcome of a payment the rail does not know."""

    outcome: Literal["failed", "completed"]
    reason: Reason


class FundBody(StrictModel):
    """Ops funding of a customer account (the `vortex ledger fund` logic)."""

    account_number: AccountNumber
    amount: AmountText = Field(description="decimal string in major units, e.g. '12.34'")
    reference: Annotated[str, StringConstraints(min_length=1, max_length=100), SINGLE_LINE]
    reason: Reason


class OpsOutcome(BaseModel):
    """What an ops action did, in words (the same sentence the CLI prints)."""

    payment_id: uuid.UUID | None = None
    outcome: str


class Funded(BaseModel):
    """The journal entry an ops funding posted (the first one, on a repeat)."""

    entry_id: uuid.UUID


class BreakGlassCreate(StrictModel):
    """Support asks to read one customer's data, saying why."""

    customer_id: uuid.UUID
    # Optional in the schema so a missing reason is refused (and audited) by the route.
    reason: ShortText | None = None


class BreakGlassPublic(BaseModel):
    """A break-glass grant: valid until `expires_at`."""

    id: uuid.UUID
    customer_id: uuid.UUID
    reason: str
    expires_at: datetime


class SessionPublic(BaseModel):
    """One login session of the caller."""

    id: uuid.UUID
    device: str
    client: str
    created_at: datetime
    last_used_at: datetime
    current: bool


class SessionList(BaseModel):
    """The caller's live sessions, most recently used first."""

    items: list[SessionPublic]


class FreezeBody(StrictModel):
    """The customer freezes outbound payments from one account."""

    account_id: uuid.UUID


class UnfreezeBody(StrictModel):
    """Lifting a self-freeze needs a fresh TOTP code."""

    account_id: uuid.UUID
    totp_code: TotpCode


class FreezePublic(BaseModel):
    """The freezes on one account."""

    account_id: uuid.UUID
    frozen: bool
    kinds: list[FreezeKind]


class FraudReportCreate(StrictModel):
    """A customer reports fraud on their own account: outbound payments freeze at once."""

    account_id: uuid.UUID
    description: LongNote


class IncidentCreate(StrictModel):
    """Staff open an incident."""

    severity: IncidentSeverity
    title: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200), SINGLE_LINE
    ]
    description: LongNote


class IncidentNoteBody(StrictModel):
    """A timeline update."""

    body: LongNote


class ResolveIncidentBody(StrictModel):
    """Resolution with the post-mortem note."""

    postmortem: LongNote


class FraudReviewBody(StrictModel):
    """Staff review of a fraud report: lift the freeze or keep it."""

    lift_freeze: bool
    reason: Reason


class IncidentPublic(BaseModel):
    """An incident and its timeline."""

    id: uuid.UUID
    kind: str
    severity: IncidentSeverity
    status: IncidentStatus
    title: str
    account_id: uuid.UUID | None
    escalations: int
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    postmortem: str | None
    timeline: list[IncidentNotePublic]
    workflow_id: str


class IncidentNotePublic(BaseModel):
    """One timeline entry."""

    kind: str
    body: str
    author_id: uuid.UUID | None
    created_at: datetime


IncidentPublic.model_rebuild()


class CustomerAccountView(BaseModel):
    """One account of a customer as support sees it under a break-glass grant."""

    id: uuid.UUID
    number: str | None
    currency: str
    status: str
    posted: Money
    held: Money


class CustomerView(BaseModel):
    """What support reads under a break-glass grant: the profile and the accounts."""

    id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    status: str
    mfa_enabled: bool
    created_at: datetime
    accounts: list[CustomerAccountView]
    grant_id: uuid.UUID


class RiskAssessBody(StrictModel):
    """What to score: an existing payment, a proposed one (account, amount, currency and an
    optional beneficiary), or a customer alone."""

    payment_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    from_account_id: uuid.UUID | None = None
    payment_method_id: uuid.UUID | None = None
    to_account_id: uuid.UUID | None = None
    amount: AmountText | None = None
    currency: CurrencyCode | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> RiskAssessBody:
        proposed = self.amount is not None or self.from_account_id is not None
        if sum([self.payment_id is not None, self.customer_id is not None, proposed]) != 1:
            raise ValueError("give payment_id, customer_id, or a proposed payment")
        if proposed and (self.amount is None or self.from_account_id is None or not self.currency):
            raise ValueError("a proposed payment needs from_account_id, amount and currency")
        return self


class RiskAssessment(BaseModel):
    """The engine's answer with each factor's contribution."""

    subject: Literal["payment", "proposed_payment", "customer"]
    customer_id: uuid.UUID
    decision: str
    reason: str | None
    score: int
    review_score: int
    factors: list[RiskFactor]
