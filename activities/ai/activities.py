"""AiActivities: the assistant's model rounds (external queue), its read-only tools and the
execution of a confirmed proposal (main queue), and the categorizer's training."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.ai.assistant import (
    ConversationGone,
    call_refs,
    checked_answer,
    proposal_intent,
    propose,
    record_usage,
    store,
    stored,
    turn_context,
)
from activities.ai.categorizer import train_and_store
from activities.ai.intents import TransferIntent
from activities.ai.llm import LlmClient, LlmReply, LlmUnavailable
from activities.ai.tools import TOOL_NAMES, TOOL_SPECS, run_tool
from activities.payment_starts import start_payment_workflow
from core.db import SessionFactory, transaction
from core.settings import Settings
from models.ai.payloads import (
    ExecuteProposalInput,
    LlmStepInput,
    LlmStepResult,
    ProposalOutcome,
    ToolCallRef,
    ToolInput,
    ToolResultRef,
    TrainCategorizerInput,
    TrainingResult,
)
from models.ai.tables import ConversationMessage, MessageRole, ProposalStatus, TransferProposal
from models.audit import record_audit
from models.base import utcnow
from models.payments.tables import Payment, PaymentKind, PaymentStatus
from temporal.ids import transfer_workflow_id

GONE = "ConversationGone"
NOT_PENDING = "ProposalNotPending"


def _gone() -> ApplicationError:
    return ApplicationError("the conversation was deleted", type=GONE, non_retryable=True)


def proposal_key(proposal_id: uuid.UUID) -> str:
    """The payment's idempotency key digest for a proposal: one proposal, one payment."""
    return hashlib.sha256(f"ai-proposal:{proposal_id}".encode()).hexdigest()


class AiActivities:
    """Assistant, proposal and categorizer steps; each method is one transaction."""

    def __init__(
        self,
        sessions: SessionFactory,
        settings: Settings,
        llm: LlmClient | None = None,
        client: Client | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._given_llm = llm
        self._client = client

    @functools.cached_property
    def _llm(self) -> LlmClient:
        """Built on first use: only the external queue's worker talks to the model."""
        return self._given_llm or LlmClient.from_settings(self._settings)

    @activity.defn(name="ai.llm_step")
    async def llm_step(self, inp: LlmStepInput) -> LlmStepResult:
        """One model round: tool calls to run, or the checked reply stored in PostgreSQL."""
        reply_key = f"{inp.user_message_id}:reply"
        async with self._sessions() as session:
            try:
                ctx = await turn_context(
                    session,
                    inp.conversation_id,
                    inp.user_message_id,
                    self._settings.ai_context_messages,
                )
            except ConversationGone as exc:
                raise _gone() from exc
            done = await stored(session, inp.conversation_id, reply_key)
        if done is not None:
            return LlmStepResult(
                reply_message_id=done.id,
                proposal_id=done.proposal_id,
                source=done.source or "local",
                degraded=done.degraded,
            )
        if inp.round == 0 and (intent := proposal_intent(ctx.question)) is not None:
            return await self._proposal_reply(inp, intent, reply_key)
        reply = await self._ask(inp, ctx.messages)
        known = [c for c in reply.tool_calls if c.name in TOOL_NAMES]
        if known and not inp.final:
            return await self._store_calls(inp, reply)
        if reply.tool_calls:  # only tools it does not have (e.g. "transfer_money"): answer
            reply = LlmReply(**{**reply.__dict__, "content": None, "tool_calls": ()})
        text, source, citations = checked_answer(reply, ctx)
        return await self._store_reply(inp, reply_key, text, source, citations, reply.degraded)

    async def _ask(self, inp: LlmStepInput, messages: list[dict[str, Any]]) -> LlmReply:
        """The endpoint's reply; a failure is retried by Temporal until the last attempt,
        which (like an open breaker) is answered by the local engine instead."""
        tools = None if inp.final else TOOL_SPECS
        if inp.local_only or not self._llm.remote:
            reply = self._llm.local.complete(messages, tools)
            if inp.local_only:
                reply = LlmReply(**{**reply.__dict__, "degraded": True})
        else:
            try:
                reply = await self._llm.complete(messages, tools)
            except LlmUnavailable as exc:
                last = activity.info().attempt >= self._settings.llm_max_attempts
                async with transaction(self._sessions) as session:
                    await record_usage(
                        session, inp.user_id, "chat", None, model=self._llm.model, outcome=exc.kind
                    )
                if not last and exc.kind != "breaker_open":
                    raise
                local = self._llm.local.complete(messages, tools)
                reply = LlmReply(**{**local.__dict__, "degraded": True, "failure": exc.kind})
        async with transaction(self._sessions) as session:
            await record_usage(
                session, inp.user_id, "chat", reply, model=self._llm.model, outcome="ok"
            )
        return reply

    async def _store_calls(self, inp: LlmStepInput, reply: LlmReply) -> LlmStepResult:
        calls = [c for c in call_refs(reply) if c["name"] in TOOL_NAMES]
        async with transaction(self._sessions) as session:
            await self._store_or_gone(
                session,
                ConversationMessage(
                    conversation_id=inp.conversation_id,
                    user_id=inp.user_id,
                    role=MessageRole.ASSISTANT,
                    turn_key=f"{inp.user_message_id}:calls:{inp.round}",
                    content="",
                    source=reply.source,
                    degraded=reply.degraded,
                    citations={"tool_calls": calls},
                ),
            )
        return LlmStepResult(
            tool_calls=[
                ToolCallRef(call_id=c["id"], name=c["name"], arguments_json=c["arguments"])
                for c in calls
            ],
            source=reply.source,
            degraded=reply.degraded,
        )

    async def _store_reply(
        self,
        inp: LlmStepInput,
        key: str,
        text: str,
        source: str,
        citations: dict[str, Any],
        degraded: bool,
        proposal_id: uuid.UUID | None = None,
    ) -> LlmStepResult:
        async with transaction(self._sessions) as session:
            row = await self._store_or_gone(
                session,
                ConversationMessage(
                    conversation_id=inp.conversation_id,
                    user_id=inp.user_id,
                    role=MessageRole.ASSISTANT,
                    turn_key=key,
                    content=text,
                    source=source,
                    degraded=degraded,
                    citations=citations,
                    proposal_id=proposal_id,
                ),
            )
        return LlmStepResult(
            reply_message_id=row.id,
            proposal_id=row.proposal_id,
            source=row.source or source,
            degraded=row.degraded,
        )

    async def _proposal_reply(
        self, inp: LlmStepInput, intent: TransferIntent, key: str
    ) -> LlmStepResult:
        async with transaction(self._sessions) as session:
            proposal, text = await propose(
                session, inp.conversation_id, inp.user_id, inp.user_message_id, intent
            )
        citations: dict[str, Any] = {"proposal_id": str(proposal.id)} if proposal else {}
        return await self._store_reply(
            inp, key, text, "local", citations, False, proposal.id if proposal else None
        )

    async def _store_or_gone(
        self, session: AsyncSession, row: ConversationMessage
    ) -> ConversationMessage:
        try:
            return await store(session, row)
        except IntegrityError as exc:  # the conversation was deleted meanwhile
            raise _gone() from exc

    @activity.defn(name="ai.run_tool")
    async def run_tool(self, inp: ToolInput) -> ToolResultRef:
        """Run one read-only tool for the conversation's owner and store its result."""
        key = f"{inp.user_message_id}:tool:{inp.round}:{inp.call.call_id}"
        async with transaction(self._sessions) as session:
            done = await stored(session, inp.conversation_id, key)
            if done is not None:
                return ToolResultRef(message_id=done.id, ok="error" not in done.content[:40])
            try:
                args = json.loads(inp.call.arguments_json or "{}")
            except ValueError:
                args = None
            if not isinstance(args, dict):
                result: dict[str, Any] = {"error": "arguments are not a JSON object"}
            else:
                result = await run_tool(session, inp.user_id, inp.call.name, args, utcnow().date())
            row = await self._store_or_gone(
                session,
                ConversationMessage(
                    conversation_id=inp.conversation_id,
                    user_id=inp.user_id,
                    role=MessageRole.TOOL,
                    turn_key=key,
                    content=json.dumps({"tool": inp.call.name, "result": result}, default=str),
                    tool_name=inp.call.name,
                    tool_call_id=inp.call.call_id,
                ),
            )
        return ToolResultRef(message_id=row.id, ok="error" not in result)

    @activity.defn(name="ai.execute_proposal")
    async def execute_proposal(self, inp: ExecuteProposalInput) -> ProposalOutcome:
        """Turn a confirmed proposal into exactly one transfer and start its TransferWorkflow."""
        assert self._client is not None
        key = proposal_key(inp.proposal_id)
        async with transaction(self._sessions) as session:
            proposal = (
                await session.execute(
                    select(TransferProposal)
                    .where(col(TransferProposal.id) == inp.proposal_id)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if (
                proposal is None
                or proposal.user_id != inp.user_id
                or proposal.conversation_id != inp.conversation_id
            ):
                raise ApplicationError("unknown proposal", type=NOT_PENDING, non_retryable=True)
            if proposal.status == ProposalStatus.CANCELLED:
                raise ApplicationError(
                    "the proposal was cancelled", type=NOT_PENDING, non_retryable=True
                )
            payment_id = uuid.uuid4()
            await session.execute(
                insert(Payment)
                .values(
                    id=payment_id,
                    user_id=proposal.user_id,
                    kind=PaymentKind.INTERNAL_TRANSFER,
                    status=PaymentStatus.PROCESSING,
                    from_account_id=proposal.from_account_id,
                    to_account_id=proposal.to_account_id,
                    amount=proposal.amount,
                    currency=proposal.currency,
                    description="Transfer prepared by the assistant",
                    idempotency_key=key,
                    request_hash=key,
                    workflow_id=transfer_workflow_id(payment_id),
                )
                .on_conflict_do_nothing(constraint="ux_payments_user_idempotency_key")
            )
            payment = (
                await session.execute(
                    select(Payment).where(
                        col(Payment.user_id) == proposal.user_id,
                        col(Payment.idempotency_key) == key,
                    )
                )
            ).scalar_one()
            if proposal.status != ProposalStatus.EXECUTED:
                proposal.status = ProposalStatus.EXECUTED
                proposal.payment_id = payment.id
                proposal.updated_at = utcnow()
                await record_audit(
                    session,
                    "ai.proposal_executed",
                    actor_user_id=proposal.user_id,
                    subject=str(proposal.id),
                    details={"payment_id": str(payment.id)},
                )
        # A closed run under that id: it ran already and the payment row holds its outcome.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await start_payment_workflow(self._client, self._sessions, self._settings, payment)
        return ProposalOutcome(
            proposal_id=inp.proposal_id, payment_id=payment.id, status=str(payment.status)
        )

    @activity.defn(name="ai.train_categorizer")
    async def train_categorizer(self, inp: TrainCategorizerInput) -> TrainingResult:
        """Train the text classifier on the categorized history; store it, and use it only
        when its held-out accuracy beats the rules alone."""
        return await train_and_store(
            self._sessions, self._settings, min_rows=inp.min_rows, max_rows=inp.max_rows
        )

    def main(self) -> list[Any]:
        """The activities of the main queue."""
        out: list[Any] = [self.run_tool, self.train_categorizer]
        if self._client is not None:
            out.append(self.execute_proposal)
        return out

    def external(self) -> list[Any]:
        """The activities of the external queue (the LLM)."""
        return [self.llm_step]
