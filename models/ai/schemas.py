"""AI API bodies and answers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from models.base import StrictModel
from models.money import Money
from models.payments.schemas import TotpCode
from models.text import NOTE, SINGLE_LINE

Prompt = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), NOTE]


class ChatBody(StrictModel):
    """A message to the assistant; without `conversation_id` a new conversation starts."""

    message: Prompt = Field(description="the question, 1..VORTEX_AI_MAX_PROMPT_CHARS characters")
    conversation_id: uuid.UUID | None = None


class ProposalPublic(BaseModel):
    """A transfer the assistant prepared; it moves money only once confirmed with TOTP."""

    id: uuid.UUID
    status: str
    amount: Money
    from_account_id: uuid.UUID
    to_account_id: uuid.UUID
    payment_id: uuid.UUID | None
    confirm_url: str


class MessagePublic(BaseModel):
    """One message of a conversation."""

    id: uuid.UUID
    role: Literal["user", "assistant"]
    content: str
    source: str | None = Field(description="llm, local (templates) or null for the customer")
    degraded: bool = Field(description="the LLM endpoint failed; the local engine answered")
    citations: dict[str, Any] = Field(description="tools used and transaction ids cited")
    proposal: ProposalPublic | None = None
    created_at: datetime


class ChatReply(BaseModel):
    """The assistant's answer to one message."""

    conversation_id: uuid.UUID
    message: MessagePublic


class ConversationPublic(BaseModel):
    """A conversation's summary."""

    id: uuid.UUID
    title: str
    message_count: int
    created_at: datetime
    updated_at: datetime


class ConversationDetail(ConversationPublic):
    """A conversation with its messages, oldest first."""

    messages: list[MessagePublic]


class ConversationPage(BaseModel):
    """A page of conversations, newest activity first."""

    items: list[ConversationPublic]
    next_cursor: str | None = None


class ConfirmBody(StrictModel):
    """The customer's TOTP code confirming a proposal."""

    totp_code: TotpCode


class ProposalResult(BaseModel):
    """A confirmed proposal and the transfer it became."""

    proposal: ProposalPublic
    payment_id: uuid.UUID
    payment_status: str
    status_url: str


Period = Literal["week", "month", "quarter", "year"]


class SpendingInsightBody(StrictModel):
    """The period to explain: a named one ending today, or an explicit range (end exclusive)."""

    period: Period | None = None
    start: date | None = None
    end: date | None = None
    category: Annotated[str, SINGLE_LINE] | None = Field(default=None, max_length=32)


class CategoryShare(BaseModel):
    """One category's spending in the period, and in the period before."""

    category: str
    amount: Money
    previous: Money
    change_percent: float | None
    count: int
    transaction_ids: list[uuid.UUID]


class SpendingInsight(BaseModel):
    """Spending in a period against the one before, with a narrative built from its figures."""

    insight_id: uuid.UUID
    start: date
    end: date
    currency: str
    total: Money
    previous_total: Money
    categories: list[CategoryShare]
    top_merchants: list[dict[str, Any]]
    narrative: str
    source: str


class CategorizeTransactionBody(StrictModel):
    """One of the caller's transactions, or a merchant/description to categorize; `apply`
    stores the result on the transaction."""

    transaction_id: uuid.UUID | None = None
    merchant: Annotated[str, SINGLE_LINE] | None = Field(default=None, max_length=200)
    description: Annotated[str, SINGLE_LINE] | None = Field(default=None, max_length=500)
    apply: bool = False


class CategorizeBatchBody(StrictModel):
    """Categorize the caller's uncategorized history (category null or 'other')."""

    limit: int = Field(default=100, ge=1, le=500)
    apply: bool = False


class CategorizationPublic(BaseModel):
    """A category with its confidence and the tier that chose it."""

    transaction_id: uuid.UUID | None
    category: str
    confidence: float
    source: Literal["memory", "rules", "model", "llm", "default"]
    model_version: int | None
    applied: bool


class CategorizationBatch(BaseModel):
    """The batch's results and a count per source."""

    items: list[CategorizationPublic]
    by_source: dict[str, int]


class Recommendation(BaseModel):
    """One recommendation with the evidence it rests on."""

    kind: Literal["subscription", "budget_overrun", "idle_cash", "savings_potential"]
    title: str
    detail: str
    amount: Money | None
    evidence: dict[str, Any]


class RecommendationList(BaseModel):
    """Recommendations for the caller."""

    items: list[Recommendation]


class BehaviorBody(StrictModel):
    """The window to examine (default: the last 30 days), against the year before it."""

    start: date | None = None
    end: date | None = None
    account_id: uuid.UUID | None = None


class Anomaly(BaseModel):
    """An unusual transaction and why."""

    transaction_id: uuid.UUID
    occurred_at: datetime
    amount: Money
    merchant: str | None
    category: str | None
    reasons: list[str]
    score: float


class BehaviorAnalysis(BaseModel):
    """Unusual transactions in the window, judged by robust statistics of the history."""

    start: date
    end: date
    baseline_transactions: int
    examined: int
    anomalies: list[Anomaly]
