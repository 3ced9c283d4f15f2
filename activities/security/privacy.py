"""Privacy: the data export (GDPR art. 15) gathers every row that names the customer, found
from the schema itself (every table with a user or account reference), so a table added later
is exported without a change here; erasure (art. 17) pseudonymizes personal data and keeps the
ledger and the audit log, which the law requires a bank to keep."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio import activity

from core.db import SessionFactory, transaction
from models.audit import record_audit
from models.base import utcnow
from models.identity.tables import KnownDevice, User
from models.notifications.tables import Notification, NotificationPreference
from models.security.payloads import DataExportInput
from models.security.reports import ErasureResult, KeptRecord
from models.security.tables import DataExport, LoginSession, ReportStatus

USER_COLUMNS = ("user_id", "owner_user_id", "customer_id", "actor_user_id", "reported_by")
# Credentials and keys are withheld: they identify nothing and would weaken the account.
WITHHELD = ("password", "secret", "digest", "token", "idempotency", "request_hash")
ERASED_DOMAIN = "erased.invalid"
KEPT = [
    KeptRecord(
        what="ledger: accounts, journal entries, postings, holds, transactions, payments",
        why="bookkeeping and anti-money-laundering records must be kept (e.g. 10 years under "
        "HGB §257 / AO §147, 5 years after the relationship under AMLD art. 40)",
    ),
    KeptRecord(
        what="audit log",
        why="the security record of who did what is append-only and hash-chained; it holds "
        "ids, not names",
    ),
]
ERASED = [
    "name and email (pseudonymized)",
    "beneficiary names and IBANs",
    "known devices and login sessions",
    "notifications and notification preferences",
    "the login: password hash and MFA secret (the user is disabled, sessions ended)",
]

_REF_COLUMNS = text(
    "SELECT table_name, column_name FROM information_schema.columns "
    "WHERE table_schema = 'public' AND column_name = ANY(:names) "
    "ORDER BY table_name, column_name"
)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: "[withheld: credential]" if any(w in k for w in WITHHELD) and v is not None else v
        for k, v in row.items()
    }


async def build_archive(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    """Every row that references the customer (or their accounts), table by table."""
    refs = (await session.execute(_REF_COLUMNS, {"names": [*USER_COLUMNS, "account_id"]})).all()
    accounts = list(
        (
            await session.execute(
                text("SELECT id FROM ledger_accounts WHERE owner_user_id = :u"), {"u": user_id}
            )
        ).scalars()
    )
    tables: dict[str, list[dict[str, Any]]] = {}
    users = await session.execute(text("SELECT * FROM users WHERE id = :u"), {"u": user_id})
    tables["users"] = [_clean(dict(r._mapping)) for r in users]
    for table, column in refs:
        if table == "alembic_version":
            continue
        found = await session.execute(
            # Identifiers from information_schema (the schema itself), never from input.
            text(f'SELECT * FROM "{table}" WHERE "{column}" = ANY(:ids)'),  # noqa: S608
            {"ids": accounts if column == "account_id" else [user_id]},
        )
        rows = tables.setdefault(table, [])
        seen = {json.dumps(r, sort_keys=True, default=str) for r in rows}
        for r in found:
            clean = _clean(dict(r._mapping))
            if json.dumps(clean, sort_keys=True, default=str) not in seen:
                rows.append(clean)
    return {
        "customer_id": str(user_id),
        "generated_at": utcnow().isoformat(),
        "sources": sorted(f"{t}.{c}" for t, c in refs if t != "alembic_version"),
        "tables": tables,
    }


class PrivacyActivities:
    """The data export's step."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn(name="privacy.build_export")
    async def build_export(self, inp: DataExportInput) -> bool:
        """Gather the customer's data into the export row (a retry rebuilds the same)."""
        async with transaction(self._sessions) as session:
            export = await session.get(DataExport, inp.export_id, with_for_update=True)
            if export is None:
                return False
            archive = await build_archive(session, export.user_id)
            export.archive = json.dumps(archive, default=str, indent=1)
            export.status, export.completed_at = ReportStatus.READY, utcnow()
            await record_audit(
                session,
                "privacy.export_ready",
                subject=str(export.user_id),
                details={"export_id": str(export.id)},
            )
        return True


def is_erased(user: User) -> bool:
    """Whether the user was erased already."""
    return user.email.endswith("@" + ERASED_DOMAIN)


async def erase_customer(session: AsyncSession, user: User, now: datetime) -> ErasureResult:
    """Pseudonymize one customer in the caller's transaction (idempotent: an erased user is
    left as it is); the ledger and the audit log are kept."""
    result = ErasureResult(user_id=user.id, erased=ERASED, kept=KEPT)
    if is_erased(user):
        return result
    user.email = f"erased-{user.id}@{ERASED_DOMAIN}"
    user.first_name, user.last_name, user.updated_at = "Erased", "Customer", now
    # No credential survives: the login cannot come back (not a valid argon2 hash).
    user.password_hash, user.mfa_secret_encrypted = "erased", None
    # A placeholder, not NULL: the table requires the field of the method's kind.
    await session.execute(
        text(
            "UPDATE payment_methods SET name = 'erased', card_last4 = NULL, "
            "iban = CASE WHEN iban IS NULL THEN NULL ELSE 'ERASED' END, "
            "card_token = CASE WHEN card_token IS NULL THEN NULL ELSE 'erased' END, "
            "deleted_at = coalesce(deleted_at, :now) WHERE user_id = :u"
        ),
        {"u": user.id, "now": now},
    )
    await session.execute(
        text("UPDATE linked_accounts SET holder_name = 'erased' WHERE user_id = :u"),
        {"u": user.id},
    )
    for table, column in (
        (KnownDevice, KnownDevice.user_id),
        (LoginSession, LoginSession.user_id),
        (Notification, Notification.user_id),
        (NotificationPreference, NotificationPreference.user_id),
    ):
        await session.execute(delete(table).where(col(column) == user.id))
    await record_audit(
        session,
        "privacy.erased",
        actor_user_id=user.id,
        subject=str(user.id),
        details={"kept": [k.what for k in KEPT]},
    )
    return result
