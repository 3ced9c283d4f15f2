"""Payment methods: saved beneficiaries (name + IBAN) and tokenised cards, soft-deleted.

Included in the app before the payments router: `/api/payments/{payment_id}` would otherwise
be tried for `/api/payments/methods` (and answer 422 for a non-UUID id).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select
from sqlmodel import col

from api.deps import ClientDep, CurrentUser, ServicesDep
from api.payments.errors import InvalidCardToken, valid_iban
from core import errors
from core.db import transaction
from models.audit import record_audit
from models.base import utcnow
from models.payments.schemas import PaymentMethodCreate, PaymentMethodList, PaymentMethodPublic
from models.payments.tables import PaymentMethod, PaymentMethodKind

router = APIRouter(prefix="/api/payments/methods", tags=["payment methods"])
PAGE_MAX = 200


def payment_method_view(method: PaymentMethod) -> PaymentMethodPublic:
    """The API view of a payment method (a card's token is never shown)."""
    return PaymentMethodPublic(
        id=method.id,
        kind=method.kind,
        name=method.name,
        iban=method.iban,
        card_last4=method.card_last4,
        created_at=method.created_at,
    )


@router.get("")
async def list_payment_methods(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
) -> PaymentMethodList:
    """The caller's payment methods (deleted ones excluded), newest first."""
    async with services.reads() as session:
        rows = (
            await session.execute(
                select(PaymentMethod)
                .where(
                    col(PaymentMethod.user_id) == user.id,
                    col(PaymentMethod.deleted_at).is_(None),
                )
                .order_by(col(PaymentMethod.created_at).desc(), col(PaymentMethod.id).desc())
                .limit(limit)
            )
        ).scalars()
        return PaymentMethodList(items=[payment_method_view(m) for m in rows])


def _new_method(user_id: uuid.UUID, body: PaymentMethodCreate) -> PaymentMethod:
    if body.kind == PaymentMethodKind.IBAN:
        assert body.iban is not None
        assert body.name is not None
        iban = valid_iban(body.iban)
        return PaymentMethod(user_id=user_id, kind=body.kind, name=body.name, iban=iban)
    assert body.card_token is not None
    if not any(ch.isalpha() for ch in body.card_token):
        raise InvalidCardToken(
            "send the card processor's token; card numbers are never accepted",
        )
    name = body.name or (f"Card ending {body.last4}" if body.last4 else "Card")
    return PaymentMethod(
        user_id=user_id,
        kind=body.kind,
        name=name,
        card_token=body.card_token,
        card_last4=body.last4,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_payment_method(
    body: PaymentMethodCreate, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> PaymentMethodPublic:
    """Save a beneficiary (IBAN checked: country length and mod-97) or a card token."""
    method = _new_method(user.id, body)
    async with transaction(services.sessions) as session:
        session.add(method)
        await session.flush()
        await record_audit(
            session,
            "payment_method.created",
            actor_user_id=user.id,
            subject=f"payment_method:{method.id}",
            client=client,
            details={"kind": method.kind.value},
        )
        await session.refresh(method)
        return payment_method_view(method)


@router.delete("/{method_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_payment_method(
    method_id: uuid.UUID, user: CurrentUser, services: ServicesDep, client: ClientDep
) -> Response:
    """Delete a payment method (soft: past payments keep referring to it)."""
    async with transaction(services.sessions) as session:
        method = await session.get(PaymentMethod, method_id, with_for_update=True)
        if method is None or method.user_id != user.id or method.deleted_at is not None:
            raise errors.NotFound("unknown payment method")
        method.deleted_at = utcnow()
        await record_audit(
            session,
            "payment_method.deleted",
            actor_user_id=user.id,
            subject=f"payment_method:{method_id}",
            client=client,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
