"""Importing a legacy user: a pending user keeping the legacy bcrypt hash, with a registration
waiting for MFA (they set it up at their first login on the new side)."""

from __future__ import annotations

import uuid
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from activities.migration.records import quarantine, remember_all
from core.crypto import is_legacy_password_hash
from models.identity.tables import RecoveryCode
from models.migration.tables import MigrationDomain

DOMAIN = MigrationDomain.USERS


def _email(raw: str) -> str | None:
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _names(full_name: str) -> tuple[str, str]:
    first, _, last = " ".join(full_name.split()).partition(" ")
    return (first or "Customer")[:100], last[:100]


async def _email_taken(session: AsyncSession, email: str, user_id: uuid.UUID | None) -> bool:
    row = await session.execute(
        text("SELECT id FROM users WHERE lower(email) = :email"), {"email": email}
    )
    found = row.first()
    return found is not None and found.id != user_id


def _row_problem(row: dict[str, Any]) -> tuple[str, str]:
    """What is wrong with the row on its own (empty when nothing), and its normalized email."""
    email = _email(str(row["email"]))
    if email is None:
        return "bad_email", ""
    if (
        not is_legacy_password_hash(str(row["password_digest"]))
        or len(row["password_digest"]) != 60
    ):
        return "unsupported_password_hash", email
    return "", email


async def _problem(session: AsyncSession, row: dict[str, Any], user_id: uuid.UUID | None) -> str:
    reason, email = _row_problem(row)
    if reason:
        return reason
    if await _email_taken(session, email, user_id):
        return "duplicate_email"
    return ""


async def import_users(session: AsyncSession, rows: list[dict[str, Any]]) -> set[int]:
    """Create the users (pending, legacy hash, awaiting MFA) in a handful of statements: the
    checks per row first, then one insert per table for the page; the legacy ids imported (the
    others were quarantined). Rows are taken in order, so of two with the same email the first
    is imported and the second quarantined."""
    candidates: list[tuple[dict[str, Any], str]] = []
    for row in rows:
        reason, email = _row_problem(row)
        if reason:
            await quarantine(session, DOMAIN, int(row["id"]), reason, f"legacy user {row['id']}")
        else:
            candidates.append((row, email))
    taken = set(
        (
            await session.execute(
                text("SELECT lower(email) FROM users WHERE lower(email) = ANY(:emails)"),
                {"emails": [email for _, email in candidates]},
            )
        ).scalars()
    )
    accepted: list[tuple[dict[str, Any], str, uuid.UUID]] = []
    for row, email in candidates:
        if email in taken:
            detail = f"legacy user {row['id']}"
            await quarantine(session, DOMAIN, int(row["id"]), "duplicate_email", detail)
            continue
        taken.add(email)
        accepted.append((row, email, uuid.uuid4()))
    if not accepted:
        return set()
    names = [_names(str(row["full_name"])) for row, _, _ in accepted]
    await session.execute(
        text(
            "INSERT INTO users (id, email, first_name, last_name, password_hash, status, "
            "mfa_enabled, created_at, updated_at) SELECT id, email, first, last, hash, "
            "'pending', false, created, now() FROM unnest(CAST(:ids AS uuid[]), "
            "CAST(:emails AS text[]), CAST(:firsts AS text[]), CAST(:lasts AS text[]), "
            "CAST(:hashes AS text[]), CAST(:created AS timestamptz[])) "
            "AS r(id, email, first, last, hash, created)"
        ),
        {
            "ids": [user_id for _, _, user_id in accepted],
            "emails": [email for _, email, _ in accepted],
            "firsts": [first for first, _ in names],
            "lasts": [last for _, last in names],
            "hashes": [str(row["password_digest"]) for row, _, _ in accepted],
            "created": [row["created_at"] for row, _, _ in accepted],
        },
    )
    await session.execute(
        text(
            "INSERT INTO registrations (id, user_id, status, created_at, updated_at) "
            "SELECT gen_random_uuid(), user_id, 'awaiting_mfa', now(), now() "
            "FROM unnest(CAST(:ids AS uuid[])) AS r(user_id)"
        ),
        {"ids": [user_id for _, _, user_id in accepted]},
    )
    await remember_all(session, DOMAIN, {int(row["id"]): uid for row, _, uid in accepted})
    return {int(row["id"]) for row, _, _ in accepted}


async def import_user(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Create the user (pending, legacy hash, awaiting MFA); False when it was quarantined."""
    return int(row["id"]) in await import_users(session, [row])


async def update_user(session: AsyncSession, user_id: uuid.UUID, row: dict[str, Any]) -> bool:
    """Apply a legacy change to a migrated user: names and email; the password only while the
    user still has the legacy hash (a rehash on our side is newer). False when refused."""
    reason = await _problem(session, row, user_id)
    if reason:
        await quarantine(session, DOMAIN, int(row["id"]), reason, "legacy update refused")
        return False
    first, last = _names(str(row["full_name"]))
    await session.execute(
        text(
            "UPDATE users SET email = :email, first_name = :first, last_name = :last, "
            "password_hash = CASE WHEN password_hash LIKE '$2%' THEN :hash "
            "ELSE password_hash END, updated_at = now() WHERE id = :id"
        ),
        {
            "id": user_id,
            "email": _email(str(row["email"])),
            "first": first,
            "last": last,
            "hash": row["password_digest"],
        },
    )
    return True


async def activate_migrated_user(
    session: AsyncSession, user_id: uuid.UUID, registration_id: uuid.UUID, digests: list[str]
) -> bool:
    """Complete a migrated user's registration once their first TOTP code is right: active,
    MFA on, recovery codes stored (no default account: their accounts come from the monolith).
    False for a user who did not come from the monolith (their registration workflow does it)."""
    migrated = await session.scalar(
        text("SELECT 1 FROM migration_identities WHERE domain = 'users' AND new_id = :id"),
        {"id": user_id},
    )
    if not migrated:
        return False
    await session.execute(
        text(
            "UPDATE registrations SET status = 'completed', completed_at = now(), "
            "updated_at = now() WHERE id = :rid AND user_id = :uid AND status = 'awaiting_mfa'"
        ),
        {"rid": registration_id, "uid": user_id},
    )
    await session.execute(
        text(
            "UPDATE users SET status = 'active', mfa_enabled = true, activated_at = now(), "
            "updated_at = now() WHERE id = :id AND status = 'pending'"
        ),
        {"id": user_id},
    )
    await session.execute(
        insert(RecoveryCode)
        .values([{"user_id": user_id, "code_digest": d} for d in digests])
        .on_conflict_do_nothing(index_elements=["code_digest"])
    )
    return True
