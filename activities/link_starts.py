"""The one way a link's LinkAccountWorkflow is started: by the route (a new link, or a retried
request) and by the reconciler (a link whose start was lost). Same id, same input."""

from __future__ import annotations

import contextlib
from typing import Final

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.settings import Settings
from models.linking.payloads import LinkAccountInput
from models.linking.tables import LinkedAccount, LinkStatus
from temporal import search_attributes

SECONDS_PER_DAY: Final = 24 * 3600


def confirmation_seconds(settings: Settings) -> int:
    """How long a customer has to confirm a link's deposits, from its creation."""
    return settings.link_confirmation_days * SECONDS_PER_DAY


async def start_link_workflow(
    client: Client,
    settings: Settings,
    link: LinkedAccount,
    currency: str,
    *,
    seconds_left: int | None = None,
) -> None:
    """Start (or attach to) the link's workflow; safe to call again. `seconds_left` shortens
    the confirmation window of a link started late (by the reconciler)."""
    window = confirmation_seconds(settings) if seconds_left is None else seconds_left
    with contextlib.suppress(WorkflowAlreadyStartedError):  # already ran: its row tells the rest
        await client.start_workflow(
            "LinkAccountWorkflow",
            LinkAccountInput(
                linked_account_id=link.id,
                user_id=link.user_id,
                activity_timeout_seconds=settings.db_activity_timeout_seconds,
                account_id=link.account_id,
                currency=currency,
                external_task_queue=settings.external_task_queue,
                confirmation_seconds=window,
                max_attempts=settings.link_confirmation_max_attempts,
            ),
            id=link.workflow_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search_attributes.USER_ID, str(link.user_id)),
                    SearchAttributePair(search_attributes.STATUS, LinkStatus(link.status).value),
                ]
            ),
            static_summary="Link an external account: two micro-deposits, customer confirms",
        )
