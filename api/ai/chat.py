"""The assistant's API flow: rate limit, store the customer's message, update-with-start the
conversation's workflow, and read the stored reply."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import select
from sqlmodel import col
from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from api.ai.errors import AssistantBusy, PromptTooLong, TooManyPrompts
from api.services import Services
from core import errors
from core.db import transaction
from models.ai.payloads import AssistantInput, AssistantReply
from models.ai.schemas import MessagePublic, ProposalPublic
from models.ai.tables import (
    Conversation,
    ConversationMessage,
    MessageRole,
    TransferProposal,
)
from models.money import Money
from temporal.ids import assistant_workflow_id

RATE_KEY = "ai:prompts:{user}"


async def check_rate(services: Services, user_id: uuid.UUID) -> None:
    """At most `ai_prompts_per_minute` messages per customer per minute (Redis counter)."""
    key = RATE_KEY.format(user=user_id)
    pipe = services.redis.pipeline()
    pipe.incr(key)
    pipe.ttl(key)
    count, ttl = await pipe.execute()
    if ttl is None or int(ttl) < 0:
        await services.redis.expire(key, 60)
        ttl = 60
    if int(count) > services.settings.ai_prompts_per_minute:
        raise TooManyPrompts(
            f"at most {services.settings.ai_prompts_per_minute} messages a minute",
            retry_after=max(int(ttl), 1),
        )


def check_prompt(services: Services, text: str) -> str:
    """A prompt within the size limit."""
    limit = services.settings.ai_max_prompt_chars
    if len(text) > limit:
        raise PromptTooLong(f"a message may have at most {limit} characters", max_chars=limit)
    return text


async def owned_conversation(
    services: Services, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation:
    """The caller's conversation, or 404."""
    async with services.reads() as session:
        row = await session.get(Conversation, conversation_id)
    if row is None or row.user_id != user_id:
        raise errors.NotFound("unknown conversation")
    return row


async def store_question(
    services: Services, user_id: uuid.UUID, conversation_id: uuid.UUID | None, text: str
) -> tuple[Conversation, ConversationMessage]:
    """The conversation (new or the caller's) and the stored question."""
    async with transaction(services.sessions) as session:
        if conversation_id is None:
            conversation_id = uuid.uuid4()
            conv = Conversation(
                id=conversation_id,
                user_id=user_id,
                title=" ".join(text.split())[:80],
                workflow_id=assistant_workflow_id(conversation_id),
            )
            session.add(conv)
            await session.flush()
        else:
            found = await session.get(Conversation, conversation_id, with_for_update=True)
            if found is None or found.user_id != user_id:
                raise errors.NotFound("unknown conversation")
            conv = found
        message_id = uuid.uuid4()
        row = ConversationMessage(
            id=message_id,
            conversation_id=conv.id,
            user_id=user_id,
            role=MessageRole.USER,
            turn_key=f"{message_id}:question",
            content=text,
        )
        session.add(row)
        conv.message_count += 1
        await session.flush()
    return conv, row


def workflow_input(services: Services, conv: Conversation) -> AssistantInput:
    """The conversation's workflow input, from settings."""
    st = services.settings
    return AssistantInput(
        conversation_id=conv.id,
        user_id=conv.user_id,
        turns_per_run=st.ai_turns_per_run,
        idle_seconds=st.ai_conversation_idle_seconds,
        max_tool_rounds=st.ai_max_tool_rounds,
        llm_task_queue=st.external_task_queue,
        llm_max_attempts=st.llm_max_attempts,
        llm_retry_initial_seconds=st.llm_retry_initial_seconds,
        llm_timeout_seconds=st.llm_timeout_seconds,
        activity_timeout_seconds=st.db_activity_timeout_seconds,
    )


async def update_with_start(
    services: Services, conv: Conversation, update: str, arg: Any, result_type: type
) -> Any:
    """Send an update to the conversation's workflow, starting it if it is not running."""
    op: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        "AssistantWorkflow",
        workflow_input(services, conv),
        id=conv.workflow_id,
        task_queue=services.settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        static_summary="Assistant conversation",
        result_type=AssistantReply,
    )
    try:
        return await asyncio.wait_for(
            services.temporal.execute_update_with_start_workflow(
                update, arg, start_workflow_operation=op, result_type=result_type
            ),
            services.settings.ai_chat_wait_seconds,
        )
    except TimeoutError as exc:
        raise AssistantBusy(
            "the answer is still being prepared; read the conversation shortly",
            retry_after=5,
            conversation_id=str(conv.id),
        ) from exc
    except WorkflowUpdateFailedError as exc:
        cause: BaseException | None = exc.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__
        if isinstance(cause, ApplicationError):
            known = errors.AppError.from_failure(cause)
            if known is not None:
                raise known from exc
        raise AssistantBusy("the assistant could not answer; try again", retry_after=5) from exc


def proposal_public(p: TransferProposal) -> ProposalPublic:
    """The API view of a proposal."""
    return ProposalPublic(
        id=p.id,
        status=p.status,
        amount=Money.of(p.amount, p.currency),
        from_account_id=p.from_account_id,
        to_account_id=p.to_account_id,
        payment_id=p.payment_id,
        confirm_url=f"/api/ai/conversations/{p.conversation_id}/proposals/{p.id}/confirm",
    )


def message_public(m: ConversationMessage, proposal: TransferProposal | None) -> MessagePublic:
    """The API view of a message."""
    return MessagePublic(
        id=m.id,
        role="user" if m.role == MessageRole.USER else "assistant",
        content=m.content,
        source=m.source,
        degraded=m.degraded,
        citations=m.citations,
        proposal=proposal_public(proposal) if proposal else None,
        created_at=m.created_at,
    )


async def visible_messages(services: Services, conversation_id: uuid.UUID) -> list[MessagePublic]:
    """The questions and answers of a conversation (tool traffic stays internal)."""
    async with services.reads() as session:
        rows = (
            await session.execute(
                select(ConversationMessage)
                .where(
                    col(ConversationMessage.conversation_id) == conversation_id,
                    col(ConversationMessage.role) != MessageRole.TOOL,
                    col(ConversationMessage.content) != "",
                )
                .order_by(col(ConversationMessage.seq))
            )
        ).scalars()
        messages = list(rows)
        proposals = {
            p.id: p
            for p in (
                await session.execute(
                    select(TransferProposal).where(
                        col(TransferProposal.conversation_id) == conversation_id
                    )
                )
            ).scalars()
        }
    return [
        message_public(m, proposals.get(m.proposal_id) if m.proposal_id else None) for m in messages
    ]


async def one_message(services: Services, message_id: uuid.UUID) -> MessagePublic:
    """A stored message with its proposal."""
    async with services.reads() as session:
        row = await session.get(ConversationMessage, message_id)
        if row is None:
            raise errors.NotFound("unknown message")
        proposal = await session.get(TransferProposal, row.proposal_id) if row.proposal_id else None
    return message_public(row, proposal)
