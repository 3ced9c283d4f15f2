"""`vortex payments ...`: ops actions that always bring a payment to a final state.

- `reconcile <id>`: what the scheduled reconciler does, for one payment, now: a payment whose
  workflow never started gets it started; one whose workflow ended unfinished is settled (a
  transfer is failed; an external payment takes the rail's word: settled -> hold captured,
  rejected / cancelled / unknown to the rail -> hold released).
- `resolve <id> --outcome failed|completed --reason ...`: force the outcome of a payment the
  rail does not know (e.g. a rail that lost it): a running workflow is terminated first, then
  the hold is released (failed) or captured (completed) exactly once. Refused while the rail
  knows the payment (use `reconcile`) or cannot be reached.

Both are audited (`payment.resolved`, client `cli:<user>`); running either again changes
nothing. The staff API for the same actions waits for the staff roles (issue 10).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import uuid
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.ledger import LedgerError
from activities.payment_recovery import (
    WorkflowFate,
    ended_reason,
    rail_verdict,
    resolve_payment,
    workflow_fate,
)
from activities.payment_starts import start_payment_workflow
from activities.providers.rail import HttpPaymentRail, PaymentRail, RailError, RailNotFoundError
from activities.rail_payments import snapshot
from core.db import SessionFactory, create_engine, create_session_factory, transaction
from core.settings import Settings
from models.payments.payloads import (
    RailPaymentSnapshot,
    ReconcileCandidate,
    ResolvedPayment,
    ResolvePaymentInput,
)
from models.payments.tables import Payment, PaymentKind, PaymentStatus
from temporal.client import connect_temporal

OUTCOMES = {"failed": PaymentStatus.FAILED, "completed": PaymentStatus.COMPLETED}


@dataclass(frozen=True)
class Ops:
    """What an ops action works with."""

    settings: Settings
    sessions: SessionFactory
    temporal: Client
    rail: PaymentRail
    actor: str


class Refused(Exception):
    """The action was not taken; the message says why (exit code 1)."""


async def _payment(ops: Ops, payment_id: uuid.UUID) -> Payment:
    async with ops.sessions() as session:
        payment = await session.get(Payment, payment_id)
    if payment is None:
        raise Refused(f"no payment {payment_id}")
    return payment


async def _at_rail(ops: Ops, payment: Payment) -> RailPaymentSnapshot | None:
    """The rail's view of the payment (None: it has no record of it)."""
    try:
        return snapshot(await ops.rail.status(str(payment.id)))
    except RailNotFoundError:
        return None
    except RailError as exc:
        raise Refused(f"the rail cannot be reached to check the payment: {exc}") from exc


async def _resolve(
    ops: Ops, payment: Payment, outcome: PaymentStatus, reason: str | None
) -> ResolvedPayment:
    try:
        async with transaction(ops.sessions) as session:
            return await resolve_payment(
                session,
                ResolvePaymentInput(
                    payment_id=payment.id, outcome=outcome, reason=reason, actor=ops.actor
                ),
            )
    except (ApplicationError, LedgerError) as exc:
        raise Refused(f"refused: {exc}") from exc


def _said(done: ResolvedPayment) -> str:
    if not done.changed:
        return f"payment {done.payment_id} is already {done.status.value}: nothing changed"
    hold = f" (hold: {done.hold})" if done.hold else ""
    return f"payment {done.payment_id} resolved as {done.status.value}{hold}"


async def reconcile(ops: Ops, payment_id: uuid.UUID) -> str:
    """Bring one payment in line with its workflow and the rail; returns what was done."""
    payment = await _payment(ops, payment_id)
    if PaymentStatus(payment.status).is_terminal:
        return f"payment {payment_id} is already {payment.status}: nothing to do"
    fate, name = await workflow_fate(ops.temporal, payment.workflow_id)
    if fate == WorkflowFate.MISSING:
        await start_payment_workflow(ops.temporal, ops.sessions, ops.settings, payment)
        return f"payment {payment_id} was stranded: its workflow {payment.workflow_id} started"
    if fate != WorkflowFate.ENDED:
        return (
            f"payment {payment_id} is {payment.status} and its workflow is {name}: nothing to "
            "reconcile (if the rail lost it, `vortex payments resolve` settles it by hand)"
        )
    if payment.kind == PaymentKind.INTERNAL_TRANSFER:
        return _said(await _resolve(ops, payment, PaymentStatus.FAILED, ended_reason(name)))
    candidate = ReconcileCandidate(
        payment_id=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        rail_payment_id=payment.rail_payment_id,
    )
    verdict = rail_verdict(await _at_rail(ops, payment), candidate)
    if verdict is None:
        raise Refused(f"payment {payment_id} is still pending at the rail: try again later")
    return _said(await _resolve(ops, payment, *verdict))


async def force_resolve(
    ops: Ops, payment_id: uuid.UUID, outcome: PaymentStatus, reason: str
) -> str:
    """Settle a payment the rail does not know with the outcome ops decided; returns what was
    done. Its running workflow (if any) is terminated first, so nothing acts on it after."""
    payment = await _payment(ops, payment_id)
    if PaymentStatus(payment.status).is_terminal:
        return f"payment {payment_id} is already {payment.status}: nothing changed"
    if payment.kind == PaymentKind.EXTERNAL:
        found = await _at_rail(ops, payment)
        if found is not None:
            raise Refused(
                f"the rail knows payment {payment_id} ({found.status}): "
                "use `vortex payments reconcile` (or wait for the rail)"
            )
    fate, _ = await workflow_fate(ops.temporal, payment.workflow_id)
    if fate == WorkflowFate.RUNNING:
        await ops.temporal.get_workflow_handle(payment.workflow_id).terminate(
            reason=f"resolved by ops ({ops.actor}): {reason}"
        )
    return _said(await _resolve(ops, payment, outcome, f"resolved by ops: {reason}"))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(settings.effective_database_url, pool_size=1)
    rail = HttpPaymentRail(settings.rail_url)
    try:
        temporal = await connect_temporal(
            settings.effective_temporal_address, settings.temporal_namespace
        )
        ops = Ops(settings, create_session_factory(engine), temporal, rail, _actor())
        payment_id = uuid.UUID(args.payment_id)
        if args.action == "reconcile":
            print(await reconcile(ops, payment_id))
        else:
            print(await force_resolve(ops, payment_id, OUTCOMES[args.outcome], args.reason))
    except Refused as exc:
        print(str(exc))
        return 1
    finally:
        await rail.aclose()
        await engine.dispose()
    return 0


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def payments_arguments(parser: argparse.ArgumentParser) -> None:
    """`vortex payments reconcile <id>` and `vortex payments resolve <id> ...`."""
    actions = parser.add_subparsers(dest="action", required=True)
    again = actions.add_parser(
        "reconcile", help="start a stranded payment's workflow or settle one left unfinished"
    )
    again.add_argument("payment_id", help="the payment's id (uuid)")
    force = actions.add_parser(
        "resolve", help="ops: force the outcome of a payment the rail does not know (audited)"
    )
    force.add_argument("payment_id", help="the payment's id (uuid)")
    force.add_argument("--outcome", required=True, choices=sorted(OUTCOMES))
    force.add_argument("--reason", required=True, help="why (audited, shown to the customer)")


def run_payments_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `vortex payments` action; the return value is the process exit code."""
    return asyncio.run(_run(settings, args))
