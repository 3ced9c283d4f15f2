"""AI tables: conversations and their messages (texts live here, workflows pass ids), transfer
proposals, LLM token usage, the per-user merchant memory and the stored categorizer models."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Identity,
    Index,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp, uuid_pk


class MessageRole(StrEnum):
    """Who wrote a message: the customer, the assistant, or a tool (its JSON result)."""

    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ProposalStatus(StrEnum):
    """A proposal waits for the customer's confirmation; only then does money move."""

    PROPOSED = "proposed"
    EXECUTED = "executed"
    CANCELLED = "cancelled"


class Conversation(SQLModel, table=True):
    """One assistant conversation of a customer (one AssistantWorkflow id)."""

    __tablename__ = "ai_conversations"
    __table_args__ = (Index("ix_ai_conversations_user_updated", "user_id", "updated_at", "id"),)

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    title: str = Field(default="", max_length=80)
    workflow_id: str = Field(max_length=100)
    message_count: int = Field(default=0)
    created_at: datetime = timestamp(server_now=True)
    updated_at: datetime = timestamp(server_now=True)


class ConversationMessage(SQLModel, table=True):
    """One message; `turn_key` makes each write of a workflow step idempotent."""

    __tablename__ = "ai_messages"
    __table_args__ = (
        CheckConstraint(sql_in("role", MessageRole), name="ck_ai_messages_role"),
        Index("ux_ai_messages_conversation_turn_key", "conversation_id", "turn_key", unique=True),
        Index("ix_ai_messages_conversation_seq", "conversation_id", "seq"),
    )

    id: uuid.UUID = uuid_pk()
    seq: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), nullable=False)
    )
    conversation_id: uuid.UUID = Field(foreign_key="ai_conversations.id", ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    role: MessageRole = Field(sa_type=String(10))
    turn_key: str = Field(max_length=120)
    content: str = Field(sa_type=Text)
    tool_name: str | None = Field(default=None, max_length=40)
    tool_call_id: str | None = Field(default=None, max_length=80)
    source: str | None = Field(default=None, max_length=16)
    degraded: bool = Field(default=False)
    citations: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    proposal_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = timestamp(server_now=True)


class TransferProposal(SQLModel, table=True):
    """A money-moving intent the assistant recognized; runs only once confirmed with TOTP."""

    __tablename__ = "ai_proposals"
    __table_args__ = (
        CheckConstraint(sql_in("status", ProposalStatus), name="ck_ai_proposals_status"),
        CheckConstraint("amount > 0", name="ck_ai_proposals_amount_positive"),
    )

    id: uuid.UUID = uuid_pk()
    conversation_id: uuid.UUID = Field(
        foreign_key="ai_conversations.id", ondelete="CASCADE", index=True
    )
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="RESTRICT")
    message_id: uuid.UUID = Field(unique=True)  # the user message it came from: one proposal
    from_account_id: uuid.UUID = Field(foreign_key="ledger_accounts.id", ondelete="RESTRICT")
    to_account_id: uuid.UUID = Field(foreign_key="ledger_accounts.id", ondelete="RESTRICT")
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    status: ProposalStatus = Field(default=ProposalStatus.PROPOSED, sa_type=String(10))
    payment_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = timestamp(server_now=True)
    updated_at: datetime = timestamp(server_now=True)


class LlmUsage(SQLModel, table=True):
    """Token usage of one LLM call (or a local-engine answer, with zero tokens)."""

    __tablename__ = "ai_llm_usage"
    __table_args__ = (Index("ix_ai_llm_usage_user_created", "user_id", "created_at"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    user_id: uuid.UUID | None = Field(default=None)
    purpose: str = Field(max_length=24)
    model: str = Field(max_length=100)
    source: str = Field(max_length=16)
    outcome: str = Field(max_length=24)
    prompt_tokens: int = Field(default=0)
    completion_tokens: int = Field(default=0)
    latency_ms: int = Field(default=0)
    created_at: datetime = timestamp(server_now=True)


class MerchantMemory(SQLModel, table=True):
    """A customer's own category for a merchant, learned from their corrections."""

    __tablename__ = "ai_merchant_memory"

    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    merchant_key: str = Field(max_length=200, primary_key=True)
    category: str = Field(max_length=32)
    corrections: int = Field(default=1)
    updated_at: datetime = timestamp(server_now=True)


class CategorizerModel(SQLModel, table=True):
    """A trained categorizer: the serialized pipeline, its HMAC (only a blob this platform
    signed is ever deserialized), and its held-out accuracy against the rules alone."""

    __tablename__ = "ai_categorizer_models"

    id: uuid.UUID = uuid_pk()
    version: int = Field(unique=True)
    algorithm: str = Field(max_length=100)
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signature: str = Field(max_length=64)
    training_rows: int
    holdout_rows: int
    accuracy: float
    rules_accuracy: float
    active: bool = Field(default=False)
    created_at: datetime = timestamp(server_now=True)


class Insight(SQLModel, table=True):
    """An insight computed for a customer (announced by `ai.insight.ready`)."""

    __tablename__ = "ai_insights"
    __table_args__ = (Index("ix_ai_insights_user_created", "user_id", "created_at"),)

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = timestamp(server_now=True)
