"""Migration tables: the identity map (legacy id -> new id), quarantined legacy rows, one run
row per domain, and the change-data-capture events already applied."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp, uuid_pk


class MigrationDomain(StrEnum):
    """What is migrated, in dependency order (accounts need their owners, history its account)."""

    USERS = "users"
    ACCOUNTS = "accounts"
    TRANSACTIONS = "transactions"

    @property
    def previous(self) -> MigrationDomain | None:
        """The domain that must be cut over before this one starts."""
        order = list(MigrationDomain)
        index = order.index(self)
        return order[index - 1] if index else None

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The gateway route prefixes this domain owns."""
        return {
            MigrationDomain.USERS: ("/api/auth",),
            MigrationDomain.ACCOUNTS: ("/api/accounts",),
            MigrationDomain.TRANSACTIONS: ("/api/transactions",),
        }[self]


class MigrationStage(StrEnum):
    """Where a domain's migration stands."""

    BACKFILLING = "backfilling"
    CATCHING_UP = "catching_up"
    CUT_OVER = "cut_over"
    FINALIZED = "finalized"
    ABORTED = "aborted"


class MigrationIdentity(SQLModel, table=True):
    """One migrated legacy row: its legacy id and the id of what it became."""

    __tablename__ = "migration_identities"
    __table_args__ = (
        UniqueConstraint("domain", "legacy_id", name="ux_migration_identities_domain_legacy"),
        Index("ix_migration_identities_domain_new", "domain", "new_id"),
        CheckConstraint(sql_in("domain", MigrationDomain), name="ck_migration_identities_domain"),
    )

    id: uuid.UUID = uuid_pk()
    domain: str = Field(max_length=16)
    legacy_id: int = Field(sa_type=BigInteger)
    new_id: uuid.UUID
    created_at: datetime = timestamp(server_now=True)


class MigrationQuarantine(SQLModel, table=True):
    """A legacy row that was not migrated, and why (it never becomes money)."""

    __tablename__ = "migration_quarantine"
    __table_args__ = (
        UniqueConstraint("domain", "legacy_id", name="ux_migration_quarantine_domain_legacy"),
        CheckConstraint(sql_in("domain", MigrationDomain), name="ck_migration_quarantine_domain"),
    )

    id: uuid.UUID = uuid_pk()
    domain: str = Field(max_length=16)
    legacy_id: int = Field(sa_type=BigInteger)
    reason: str = Field(max_length=64)
    detail: str = Field(default="", max_length=500)
    created_at: datetime = timestamp(server_now=True)


class MigrationRun(SQLModel, table=True):
    """A domain's migration: stage, counts, cursors, the last verification and cutover times."""

    __tablename__ = "migration_runs"
    __table_args__ = (
        CheckConstraint(sql_in("domain", MigrationDomain), name="ck_migration_runs_domain"),
        CheckConstraint(sql_in("stage", MigrationStage), name="ck_migration_runs_stage"),
    )

    domain: str = Field(primary_key=True, max_length=16)
    stage: str = Field(max_length=16)
    workflow_id: str = Field(max_length=100)
    backfilled: int = Field(default=0, sa_type=BigInteger)
    quarantined: int = Field(default=0, sa_type=BigInteger)
    applied_events: int = Field(default=0, sa_type=BigInteger)
    backfill_cursor: int = Field(default=0, sa_type=BigInteger)
    cdc_cursor: int = Field(default=0, sa_type=BigInteger)
    verification: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    routes_before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    started_at: datetime = timestamp(server_now=True)
    cutover_at: datetime | None = timestamp(nullable=True)
    finalized_at: datetime | None = timestamp(nullable=True)
    updated_at: datetime = timestamp(server_now=True)


class MigrationAppliedEvent(SQLModel, table=True):
    """A change-data-capture event applied to the new side (so a retry never applies it twice)."""

    __tablename__ = "migration_applied_events"

    domain: str = Field(primary_key=True, sa_type=String(16))
    event_id: int = Field(primary_key=True, sa_type=BigInteger)
    outcome: str = Field(max_length=16)
    applied_at: datetime = timestamp(server_now=True)
