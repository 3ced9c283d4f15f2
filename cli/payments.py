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
nothing. The actions live in `activities/payment_ops.py`, shared with the staff ops routes.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import uuid

from activities.payment_ops import OUTCOMES, Ops, Refused, force_resolve, reconcile
from activities.providers.rail import HttpPaymentRail
from core.db import create_engine, create_session_factory
from core.settings import Settings
from temporal.client import connect_for


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(settings.effective_database_url, pool_size=1)
    rail = HttpPaymentRail(settings.rail_url)
    try:
        temporal = await connect_for(settings)
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
