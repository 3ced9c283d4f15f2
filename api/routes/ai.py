"""The assistant: chat, conversations (list, read, delete) and confirming a proposal.

A message is stored in PostgreSQL, then sent to the conversation's AssistantWorkflow as an
update (started if needed) that answers with the stored reply's id. A proposal moves money
only after `.../confirm` with a fresh TOTP code, checked here and never sent to Temporal.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import DateTime, Uuid, bindparam, delete, select, tuple_
from sqlmodel import col
from temporalio.service import RPCError

from api.ai.chat import (
    check_prompt,
    check_rate,
    one_message,
    owned_conversation,
    proposal_public,
    store_question,
    update_with_start,
    visible_messages,
)
from api.ai.errors import ProposalNotPending
from api.auth import errors as auth_errors
from api.auth.totp import consume_totp, user_key
from api.deps import ClientDep, CurrentUser, CurrentUserRow, ServicesDep
from api.openapi_problems import problems
from api.pagination import CursorParam, decode_cursor, encode_cursor, position
from core import errors
from core.db import transaction
from models.ai.payloads import AssistantReply, ProposalConfirmation, ProposalOutcome
from models.ai.schemas import (
    ChatBody,
    ChatReply,
    ConfirmBody,
    ConversationDetail,
    ConversationPage,
    ConversationPublic,
    ProposalResult,
)
from models.ai.tables import Conversation, ProposalStatus, TransferProposal
from models.audit import record_audit

router = APIRouter(prefix="/api/ai", tags=["ai"])
PAGE_MAX = 100


@router.post("/chat", responses=problems(429, 503))
async def chat(body: ChatBody, user: CurrentUser, services: ServicesDep) -> ChatReply:
    """Ask the assistant; answers cite the figures and transaction ids they rest on."""
    text = check_prompt(services, body.message)
    if body.conversation_id is not None:
        await owned_conversation(services, user.id, body.conversation_id)
    await check_rate(services, user.id)
    conv, question = await store_question(services, user.id, body.conversation_id, text)
    reply: AssistantReply = await update_with_start(
        services, conv, "send_message", {"message_id": str(question.id)}, AssistantReply
    )
    return ChatReply(conversation_id=conv.id, message=await one_message(services, reply.message_id))


def _public(c: Conversation) -> ConversationPublic:
    return ConversationPublic(
        id=c.id,
        title=c.title,
        message_count=c.message_count,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


@router.get("/conversations")
async def list_conversations(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    cursor: CursorParam = None,
) -> ConversationPage:
    """The caller's conversations, most recently active first."""
    query = select(Conversation).where(col(Conversation.user_id) == user.id)
    if cursor is not None:
        at, after = position(*decode_cursor(cursor, "c", 2))
        query = query.where(
            tuple_(col(Conversation.updated_at), col(Conversation.id))
            < tuple_(
                bindparam("at", at, type_=DateTime(timezone=True)),
                bindparam("after", after, type_=Uuid),
            )
        )
    async with services.reads() as session:
        rows = list(
            (
                await session.execute(
                    query.order_by(
                        col(Conversation.updated_at).desc(), col(Conversation.id).desc()
                    ).limit(limit + 1)
                )
            ).scalars()
        )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit and page:
        next_cursor = encode_cursor("c", page[-1].updated_at.isoformat(), str(page[-1].id))
    return ConversationPage(items=[_public(c) for c in page], next_cursor=next_cursor)


@router.get("/conversations/{conversation_id}")
async def read_conversation(
    conversation_id: uuid.UUID, user: CurrentUser, services: ServicesDep
) -> ConversationDetail:
    """One of the caller's conversations with its messages."""
    conv = await owned_conversation(services, user.id, conversation_id)
    return ConversationDetail(
        **_public(conv).model_dump(), messages=await visible_messages(services, conv.id)
    )


@router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(
    conversation_id: uuid.UUID, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> Response:
    """Delete a conversation and its messages (a transfer it led to stays a payment)."""
    conv = await owned_conversation(services, user.id, conversation_id)
    async with transaction(services.sessions) as session:
        await session.execute(delete(Conversation).where(col(Conversation.id) == conv.id))
        await record_audit(
            session,
            "ai.conversation_deleted",
            actor_user_id=user.id,
            subject=str(conv.id),
            client=client,
        )
    with contextlib.suppress(RPCError):  # not running: nothing to stop
        await services.temporal.get_workflow_handle(conv.workflow_id).signal("close")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/conversations/{conversation_id}/proposals/{proposal_id}/confirm",
    responses=problems(409, 429, 503),
)
async def confirm_proposal(
    conversation_id: uuid.UUID,
    proposal_id: uuid.UUID,
    body: ConfirmBody,
    user: CurrentUserRow,
    services: ServicesDep,
    client: ClientDep,
) -> ProposalResult:
    """Confirm a proposed transfer with a TOTP code: it runs once, as a TransferWorkflow."""
    conv = await owned_conversation(services, user.id, conversation_id)
    async with services.reads() as session:
        proposal = await session.get(TransferProposal, proposal_id)
    if proposal is None or proposal.conversation_id != conv.id:
        raise errors.NotFound("unknown proposal")
    if proposal.status == ProposalStatus.CANCELLED:
        raise ProposalNotPending("the proposal was cancelled")
    account = user_key(user.id)
    await services.throttle.ensure_allowed(account, None)
    async with transaction(services.sessions) as session:
        accepted = await consume_totp(session, services.crypto, user, body.totp_code)
        await record_audit(
            session,
            "ai.proposal_confirmation",
            actor_user_id=user.id,
            subject=str(proposal_id),
            client=client,
            details={"accepted": accepted},
        )
    if not accepted:
        await services.throttle.record_failure(account, client)
        raise auth_errors.InvalidMfaCode()
    outcome: ProposalOutcome = await update_with_start(
        services,
        conv,
        "confirm_proposal",
        ProposalConfirmation(proposal_id=proposal_id),
        ProposalOutcome,
    )
    async with services.reads() as session:
        fresh = await session.get(TransferProposal, proposal_id)
    assert fresh is not None
    return ProposalResult(
        proposal=proposal_public(fresh),
        payment_id=outcome.payment_id,
        payment_status=outcome.status,
        status_url=f"/api/payments/{outcome.payment_id}/status",
    )
