"""Ownership lookups shared by the routes: the caller's object, or 404.

Another customer's object is a 404 exactly like a missing one, so nothing leaks its existence.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.services import Services
from core import errors
from models.ledger.tables import LedgerAccount, Transaction
from models.linking.tables import LinkedAccount
from models.payments.tables import Payment, PaymentMethod


async def owned_account(
    session: AsyncSession, user_id: uuid.UUID, account_id: uuid.UUID, *, lock: bool = False
) -> LedgerAccount:
    """The caller's customer account, or 404 (also for another user's account)."""
    account = await session.get(LedgerAccount, account_id, with_for_update=lock)
    if account is None or account.owner_user_id != user_id:
        raise errors.NotFound("unknown account")
    return account


async def owned_transaction(
    session: AsyncSession, user_id: uuid.UUID, transaction_id: uuid.UUID
) -> Transaction:
    """One of the caller's transactions, or 404."""
    row = await session.get(Transaction, transaction_id)
    if row is None or row.user_id != user_id:
        raise errors.NotFound("unknown transaction")
    return row


async def owned_payment(services: Services, user_id: uuid.UUID, payment_id: uuid.UUID) -> Payment:
    """The caller's payment, or 404."""
    async with services.reads() as session:
        payment = await session.get(Payment, payment_id)
    if payment is None or payment.user_id != user_id:
        raise errors.NotFound("unknown payment")
    return payment


async def owned_payment_method(
    session: AsyncSession, user_id: uuid.UUID, method_id: uuid.UUID
) -> PaymentMethod:
    """The caller's payment method that is not deleted, or 404 (also for another user's)."""
    method = await session.get(PaymentMethod, method_id)
    if method is None or method.user_id != user_id or method.deleted_at is not None:
        raise errors.NotFound("unknown payment method")
    return method


async def owned_link(
    services: Services, user_id: uuid.UUID, account_id: uuid.UUID, link_id: uuid.UUID
) -> LinkedAccount:
    """The caller's link on the caller's account, or 404."""
    async with services.reads() as session:
        await owned_account(session, user_id, account_id)
        link = await session.get(LinkedAccount, link_id)
    if link is None or link.user_id != user_id or link.account_id != account_id:
        raise errors.NotFound("unknown linked account")
    return link
