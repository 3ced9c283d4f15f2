"""Workflow and activity payloads of the AI domain: ids and references only (message texts
stay in PostgreSQL), plus the short JSON arguments of read-only tool calls."""

from __future__ import annotations

import uuid

from pydantic import BaseModel


class AssistantInput(BaseModel):
    """One conversation's workflow; durations and limits come from settings."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    turns_done: int = 0
    turns_per_run: int = 50
    idle_seconds: int = 86_400
    max_tool_rounds: int = 4
    llm_task_queue: str = ""
    llm_max_attempts: int = 2
    llm_retry_initial_seconds: float = 0.5
    llm_timeout_seconds: float = 20.0
    activity_timeout_seconds: float | None = None


class UserMessage(BaseModel):
    """A customer message already stored by the API (update `send_message`)."""

    message_id: uuid.UUID


class ToolCallRef(BaseModel):
    """A read-only tool call the model asked for (name and short JSON arguments)."""

    call_id: str
    name: str
    arguments_json: str


class LlmStepInput(BaseModel):
    """One model round of a turn."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    user_message_id: uuid.UUID
    round: int
    local_only: bool = False  # the endpoint already failed in this turn
    final: bool = False  # no more tool rounds: answer from what the tools returned


class LlmStepResult(BaseModel):
    """Tool calls to run, or the stored reply."""

    tool_calls: list[ToolCallRef] = []
    reply_message_id: uuid.UUID | None = None
    proposal_id: uuid.UUID | None = None
    source: str = "local"
    degraded: bool = False


class ToolInput(BaseModel):
    """One tool call, scoped to the conversation's owner."""

    conversation_id: uuid.UUID
    user_id: uuid.UUID
    user_message_id: uuid.UUID
    round: int
    call: ToolCallRef


class ToolResultRef(BaseModel):
    """The stored tool message."""

    message_id: uuid.UUID
    ok: bool


class AssistantReply(BaseModel):
    """The answer to `send_message`: the stored reply's id."""

    message_id: uuid.UUID
    proposal_id: uuid.UUID | None = None
    source: str
    degraded: bool


class ProposalConfirmation(BaseModel):
    """Update `confirm_proposal`: sent only after the API verified the customer's TOTP code."""

    proposal_id: uuid.UUID


class ExecuteProposalInput(BaseModel):
    """Run a confirmed proposal as a transfer (exactly once)."""

    proposal_id: uuid.UUID
    conversation_id: uuid.UUID
    user_id: uuid.UUID


class ProposalOutcome(BaseModel):
    """The transfer a proposal became."""

    proposal_id: uuid.UUID
    payment_id: uuid.UUID
    status: str


class AssistantState(BaseModel):
    """`status` query of AssistantWorkflow."""

    conversation_id: uuid.UUID
    turns: int
    status: str


class TrainCategorizerInput(BaseModel):
    """CategorizerTrainingWorkflow's input."""

    min_rows: int = 50
    max_rows: int = 200_000
    activity_timeout_seconds: float | None = None


class TrainingResult(BaseModel):
    """A training run: the stored version (None: too little data), its held-out accuracy
    against the rules alone, and whether it is now the model in use."""

    version: int | None
    training_rows: int
    holdout_rows: int
    accuracy: float | None
    rules_accuracy: float | None
    active: bool
    reason: str
