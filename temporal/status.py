"""Publishing a workflow's state to its search attributes, so ops can filter in the Temporal UI.

Search attributes are plaintext and eventually consistent: ids, statuses and amounts only. Call
from workflow code only (it issues a workflow command).
"""

from __future__ import annotations

import uuid

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

from temporal import search_attributes


def publish_status(
    status: str,
    *,
    user_id: uuid.UUID | None = None,
    amount: int | None = None,
    currency: str | None = None,
) -> None:
    """Upsert `VortexStatus` (and the ids and amount given) on the current workflow."""
    updates: list[SearchAttributeUpdate[str] | SearchAttributeUpdate[int]] = []
    if user_id is not None:
        updates.append(search_attributes.USER_ID.value_set(str(user_id)))
    updates.append(search_attributes.STATUS.value_set(status))
    if amount is not None:
        updates.append(search_attributes.AMOUNT.value_set(amount))
    if currency is not None:
        updates.append(search_attributes.CURRENCY.value_set(currency))
    workflow.upsert_search_attributes(updates)


def publish_migration_status(status: str, *, domain: str, rows: int) -> None:
    """Upsert `VortexStatus`, `VortexMigrationDomain` and `VortexMigrationRows` (rows done)."""
    workflow.upsert_search_attributes(
        [
            search_attributes.STATUS.value_set(status),
            search_attributes.MIGRATION_DOMAIN.value_set(domain),
            search_attributes.MIGRATION_ROWS.value_set(rows),
        ]
    )
