"""Break-glass: support reads one customer's data only under a reasoned, time-boxed grant.

`POST /api/staff/break-glass {customer_id, reason}` opens a grant for
`break_glass_ttl_seconds`; the `GET /api/staff/customers/{id}/...` reads answer 403
`break-glass-required` without a live grant. The grant, every read under it and every refusal
are in the hash-chained audit log with the staff member, the customer and the reason.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, status
from sqlalchemy import select
from sqlmodel import col

from api.deps import ClientDep, ServicesDep
from api.openapi_problems import problems
from api.payments.flow import payment_public
from api.services import Services
from api.staff import StaffCaller, require_roles
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.identity.tables import User
from models.ledger.tables import AccountKind, LedgerAccount
from models.money import Money
from models.payments.schemas import PaymentPage
from models.payments.tables import Payment
from models.security.schemas import (
    BreakGlassCreate,
    BreakGlassPublic,
    CustomerAccountView,
    CustomerView,
)
from models.security.tables import BreakGlassGrant
from models.staff.tables import StaffRole

router = APIRouter(prefix="/api/staff", tags=["staff"])
Support = Annotated[StaffCaller, Depends(require_roles(StaffRole.SUPPORT))]


class BreakGlassRequired(errors.AppError):
    """Support tried to read a customer without a live grant."""

    status, type, title = 403, "break-glass-required", "A break-glass grant is required"


class ReasonRequired(errors.AppError):
    """A staff action without a reason."""

    status, type, title = 422, "reason-required", "A reason is required"


MIN_REASON = 10


@router.post("/break-glass", status_code=status.HTTP_201_CREATED)
async def open_break_glass(
    body: BreakGlassCreate, staff: Support, services: ServicesDep, client: ClientDep
) -> BreakGlassPublic:
    """Open a time-boxed grant to read one customer's data (the reason is audited)."""
    if not body.reason or len(body.reason) < MIN_REASON:
        async with transaction(services.sessions) as session:
            await record_audit(
                session,
                "staff.break_glass_refused",
                actor_user_id=staff.id,
                subject=str(body.customer_id),
                client=client,
                details={"why": "no reason given"},
            )
        raise ReasonRequired(f"say why you need this customer's data ({MIN_REASON}+ characters)")
    expires_at = utcnow() + timedelta(seconds=services.settings.break_glass_ttl_seconds)
    async with transaction(services.sessions) as session:
        customer = await session.get(User, body.customer_id)
        if customer is None:
            raise errors.NotFound("unknown customer")
        grant = BreakGlassGrant(
            staff_user_id=staff.id,
            customer_id=body.customer_id,
            reason=body.reason,
            expires_at=expires_at,
        )
        session.add(grant)
        await session.flush()
        await record_audit(
            session,
            "staff.break_glass",
            actor_user_id=staff.id,
            subject=str(body.customer_id),
            client=client,
            details={"grant_id": str(grant.id), "reason": body.reason, "expires_at": expires_at},
        )
    return BreakGlassPublic(
        id=grant.id, customer_id=grant.customer_id, reason=grant.reason, expires_at=expires_at
    )


async def _granted(
    services: Services, staff: StaffCaller, customer_id: uuid.UUID, what: str, client: str
) -> BreakGlassGrant:
    """The staff member's live grant on the customer (the read is audited), else 403."""
    async with transaction(services.sessions) as session:
        grant = await session.scalar(
            select(BreakGlassGrant)
            .where(
                col(BreakGlassGrant.staff_user_id) == staff.id,
                col(BreakGlassGrant.customer_id) == customer_id,
                col(BreakGlassGrant.expires_at) > utcnow(),
            )
            .order_by(col(BreakGlassGrant.expires_at).desc())
            .limit(1)
        )
        await record_audit(
            session,
            "staff.customer_read" if grant else "staff.customer_read_refused",
            actor_user_id=staff.id,
            subject=str(customer_id),
            client=client,
            details={
                "what": what,
                "grant_id": str(grant.id) if grant else None,
                "reason": grant.reason if grant else None,
            },
        )
    if grant is None:
        raise BreakGlassRequired("open a break-glass grant with a reason first")
    return grant


@router.get("/customers/{customer_id}", responses=problems(403))
async def read_customer(
    customer_id: uuid.UUID, staff: Support, services: ServicesDep, client: ClientDep
) -> CustomerView:
    """A customer's profile and accounts, under a live break-glass grant."""
    grant = await _granted(services, staff, customer_id, "profile", client)
    async with services.reads() as session:
        user = await session.get(User, customer_id)
        accounts = (
            await session.execute(
                select(LedgerAccount)
                .where(
                    col(LedgerAccount.owner_user_id) == customer_id,
                    col(LedgerAccount.kind) == AccountKind.CUSTOMER,
                )
                .order_by(col(LedgerAccount.opened_at))
            )
        ).scalars()
    if user is None:
        raise errors.NotFound("unknown customer")
    return CustomerView(
        id=user.id,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        status=user.status,
        mfa_enabled=user.mfa_enabled,
        created_at=user.created_at,
        grant_id=grant.id,
        accounts=[
            CustomerAccountView(
                id=a.id,
                number=a.number,
                currency=a.currency,
                status=a.status,
                posted=Money.of(a.posted, a.currency),
                held=Money.of(a.held, a.currency),
            )
            for a in accounts
        ],
    )


@router.get("/customers/{customer_id}/payments", responses=problems(403))
async def read_customer_payments(
    customer_id: uuid.UUID, staff: Support, services: ServicesDep, client: ClientDep
) -> PaymentPage:
    """A customer's latest 100 payments, under a live break-glass grant."""
    await _granted(services, staff, customer_id, "payments", client)
    async with services.reads() as session:
        rows = await session.execute(
            select(Payment)
            .where(col(Payment.user_id) == customer_id)
            .order_by(col(Payment.created_at).desc())
            .limit(100)
        )
    return PaymentPage(items=[payment_public(p) for p in rows.scalars()])
