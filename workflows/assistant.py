"""AssistantWorkflow: one conversation (an entity workflow, in the manner of temporal-ai-agent).

- update `send_message(UserMessage)`: a message the API stored; answers with the stored
  reply's id after model rounds (`ai.llm_step`, external queue) and read-only tools
  (`ai.run_tool`, scoped to the owner). Turns run one at a time.
- update `confirm_proposal(ProposalConfirmation)`: the API verified the customer's TOTP code
  (never sent here); the proposal becomes exactly one transfer (`ai.execute_proposal`).
- signal `close`: the conversation was deleted.
Texts live in PostgreSQL: the history holds ids and short tool arguments only. After
`turns_per_run` turns it continues as new; after `idle_seconds` without a message it ends
(the next message starts it again under the same id).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.ai.activities import AiActivities
    from models.ai.payloads import (
        AssistantInput,
        AssistantReply,
        AssistantState,
        ExecuteProposalInput,
        LlmStepInput,
        LlmStepResult,
        ProposalConfirmation,
        ProposalOutcome,
        ToolInput,
        UserMessage,
    )
    from temporal.activity_options import db_step
    from temporal.status import publish_status


@workflow.defn(name="AssistantWorkflow")
class AssistantWorkflow:
    """Answers a customer's messages from their own data; moves money only when confirmed."""

    @workflow.init
    def __init__(self, inp: AssistantInput) -> None:
        self._inp = inp
        self._turns = inp.turns_done
        self._run_turns = 0
        self._lock = asyncio.Lock()
        self._poked = False
        self._closed = False
        self._db = db_step(inp.activity_timeout_seconds)

    @workflow.run
    async def run(self, inp: AssistantInput) -> AssistantState:
        """Serve turns until idle, closed, or time to continue as new."""
        publish_status("active", user_id=inp.user_id)
        while True:
            self._poked = False
            try:
                await workflow.wait_condition(
                    lambda: self._poked or self._closed or self._full(),
                    timeout=timedelta(seconds=inp.idle_seconds),
                )
            except TimeoutError:
                if not self._lock.locked():
                    break
                continue
            if self._closed:
                break
            if self._full():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(inp.model_copy(update={"turns_done": self._turns}))
        await workflow.wait_condition(workflow.all_handlers_finished)
        publish_status("closed")
        return self.status()

    def _full(self) -> bool:
        return self._run_turns >= self._inp.turns_per_run and not self._lock.locked()

    @workflow.update
    async def send_message(self, message: UserMessage) -> AssistantReply:
        """Answer one stored user message (the reply is stored too; its id comes back)."""
        self._poked = True
        async with self._lock:
            result = await self._turn(message)
            self._turns += 1
            self._run_turns += 1
        assert result.reply_message_id is not None
        return AssistantReply(
            message_id=result.reply_message_id,
            proposal_id=result.proposal_id,
            source=result.source,
            degraded=result.degraded,
        )

    @send_message.validator
    def _accept_message(self, message: UserMessage) -> None:
        if self._closed:
            raise ApplicationError("the conversation was deleted", type="ConversationGone")

    async def _turn(self, message: UserMessage) -> LlmStepResult:
        local_only = False
        for round_no in range(self._inp.max_tool_rounds + 1):
            step = await self._llm_step(
                LlmStepInput(
                    conversation_id=self._inp.conversation_id,
                    user_id=self._inp.user_id,
                    user_message_id=message.message_id,
                    round=round_no,
                    local_only=local_only,
                    final=round_no == self._inp.max_tool_rounds,
                )
            )
            if step.reply_message_id is not None:
                return step
            local_only = local_only or step.degraded
            for call in step.tool_calls:
                await workflow.execute_activity_method(
                    AiActivities.run_tool,
                    ToolInput(
                        conversation_id=self._inp.conversation_id,
                        user_id=self._inp.user_id,
                        user_message_id=message.message_id,
                        round=round_no,
                        call=call,
                    ),
                    **self._db,
                )
        raise ApplicationError("no reply after the last round", non_retryable=True)

    async def _llm_step(self, inp: LlmStepInput) -> LlmStepResult:
        try:
            return await workflow.execute_activity_method(
                AiActivities.llm_step,
                inp,
                task_queue=self._inp.llm_task_queue or None,
                # A slow endpoint: one call's timeout plus time to store the answer.
                start_to_close_timeout=timedelta(seconds=self._inp.llm_timeout_seconds + 15),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=self._inp.llm_retry_initial_seconds),
                    maximum_attempts=self._inp.llm_max_attempts,
                    non_retryable_error_types=["ConversationGone"],
                ),
            )
        except ActivityError as exc:
            if isinstance(exc.cause, ApplicationError) and exc.cause.type == "ConversationGone":
                self._closed = True
            raise ApplicationError(
                "the assistant could not answer", type="AssistantFailed", non_retryable=True
            ) from exc

    @workflow.update
    async def confirm_proposal(self, confirmation: ProposalConfirmation) -> ProposalOutcome:
        """Run a proposal the customer confirmed (TOTP verified by the API) as one transfer."""
        self._poked = True
        try:
            return await workflow.execute_activity_method(
                AiActivities.execute_proposal,
                ExecuteProposalInput(
                    proposal_id=confirmation.proposal_id,
                    conversation_id=self._inp.conversation_id,
                    user_id=self._inp.user_id,
                ),
                **self._db,
            )
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError):
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from exc
            raise

    @workflow.signal
    def close(self) -> None:
        """The conversation was deleted: end the workflow."""
        self._closed = True

    @workflow.query
    def status(self) -> AssistantState:
        """Turns answered and whether the conversation is open."""
        return AssistantState(
            conversation_id=self._inp.conversation_id,
            turns=self._turns,
            status="closed" if self._closed else "active",
        )
