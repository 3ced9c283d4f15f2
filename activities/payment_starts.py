"""Start a payment's workflow from its row: the one place that builds `TransferInput` and
`ExternalPaymentInput`, so the API and the stranded-payment reconciler start the same workflow
with the same input under the same id (the row holds everything the input needs).

Workflows are named by their registered type, so this module needs no workflow code.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from core.db import SessionFactory
from core.settings import Settings
from models.ledger.tables import LedgerAccount
from models.money import Money
from models.payments.payloads import ExternalPaymentInput, PaymentState, TransferInput
from models.payments.tables import Payment, PaymentKind, PaymentMethod, PaymentStatus
from temporal import search_attributes

TRANSFER_WORKFLOW: Final = "TransferWorkflow"
EXTERNAL_PAYMENT_WORKFLOW: Final = "ExternalPaymentWorkflow"
POLL_BACKOFF_CAP = 20  # polling the rail backs off up to this many times the base interval


def payment_search_attributes(payment: Payment) -> TypedSearchAttributes:
    """Ids, status and amount only: what ops filter payments by in the Temporal UI."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(search_attributes.USER_ID, str(payment.user_id)),
            SearchAttributePair(search_attributes.STATUS, PaymentStatus(payment.status).value),
            SearchAttributePair(search_attributes.AMOUNT, payment.amount),
            SearchAttributePair(search_attributes.CURRENCY, payment.currency),
        ]
    )


def transfer_input(payment: Payment, settings: Settings) -> TransferInput:
    """The TransferWorkflow input of an internal-transfer row."""
    assert payment.to_account_id is not None
    return TransferInput(
        payment_id=payment.id,
        user_id=payment.user_id,
        from_account_id=payment.from_account_id,
        to_account_id=payment.to_account_id,
        amount=payment.amount,
        currency=payment.currency,
        description=payment.description,
        execute_at=payment.execute_at,
        activity_timeout_seconds=settings.db_activity_timeout_seconds,
    )


async def external_payment_input(
    sessions: SessionFactory, payment: Payment, settings: Settings
) -> ExternalPaymentInput:
    """The ExternalPaymentWorkflow input of an external-payment row (beneficiary and debtor
    account read from their rows: a beneficiary is only ever soft-deleted)."""
    st = settings
    async with sessions() as session:
        method = await session.get(PaymentMethod, payment.payment_method_id)
        source = await session.get(LedgerAccount, payment.from_account_id)
    assert method is not None
    assert method.iban is not None
    assert source is not None
    assert source.number is not None
    return ExternalPaymentInput(
        payment_id=payment.id,
        user_id=payment.user_id,
        from_account_id=payment.from_account_id,
        debtor_account=source.number,
        amount=payment.amount,
        currency=payment.currency,
        description=payment.description,
        creditor_name=method.name,
        creditor_iban=method.iban,
        rail_task_queue=st.external_task_queue,
        approval_timeout_seconds=st.payment_approval_timeout_seconds,
        submit_max_attempts=st.rail_submit_max_attempts,
        submit_initial_interval_seconds=st.rail_retry_initial_interval_seconds,
        poll_interval_seconds=st.rail_poll_interval_seconds,
        hold_ttl_seconds=st.payment_hold_ttl_seconds,
        hold_margin_seconds=st.payment_hold_margin_seconds,
        activity_timeout_seconds=st.db_activity_timeout_seconds,
        poll_max_interval_seconds=st.rail_poll_interval_seconds * POLL_BACKOFF_CAP,
    )


async def start_payment_workflow(
    client: Client,
    sessions: SessionFactory,
    settings: Settings,
    payment: Payment,
    *,
    rpc_timeout: timedelta | None = None,
) -> WorkflowHandle[Any, PaymentState]:
    """Start (or attach to) the payment's workflow; safe to call any number of times.

    Raises `WorkflowAlreadyStartedError` when the workflow id has a closed run (the id is
    never reused: a finished or stopped payment is resolved, not run again).
    """
    arg: TransferInput | ExternalPaymentInput
    if payment.kind == PaymentKind.INTERNAL_TRANSFER:
        name, arg = TRANSFER_WORKFLOW, transfer_input(payment, settings)
        summary, details = "Internal transfer", None
    else:
        arg = await external_payment_input(sessions, payment, settings)
        money = Money.of(payment.amount, payment.currency)
        name = EXTERNAL_PAYMENT_WORKFLOW
        summary = f"External payment of {money.amount} {money.currency}"
        details = f"Payment {payment.id} from account {payment.from_account_id}"
    return await client.start_workflow(
        name,
        arg,
        id=payment.workflow_id,
        task_queue=settings.task_queue,
        result_type=PaymentState,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=payment_search_attributes(payment),
        static_summary=summary,
        static_details=details,
        rpc_timeout=rpc_timeout,
    )
