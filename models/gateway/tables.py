"""The gateway's routing table: which side answers each route prefix, changed live."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp


class RouteMode(StrEnum):
    """Who answers a prefix: the monolith, the new platform, both (legacy answers, the new side
    is compared), a percentage of requests, or a cohort of users."""

    LEGACY = "legacy"
    NEW = "new"
    SHADOW = "shadow"
    CANARY = "canary"
    COHORT = "cohort"


class GatewayRoute(SQLModel, table=True):
    """One route prefix and its mode; the longest matching prefix wins, no row means legacy."""

    __tablename__ = "gateway_routes"
    __table_args__ = (
        CheckConstraint(sql_in("mode", RouteMode), name="ck_gateway_routes_mode"),
        CheckConstraint(
            "canary_percent BETWEEN 0 AND 100", name="ck_gateway_routes_canary_percent"
        ),
        CheckConstraint("prefix LIKE '/%'", name="ck_gateway_routes_prefix"),
    )

    prefix: str = Field(primary_key=True, max_length=200)
    mode: RouteMode = Field(sa_type=String(8))
    # CANARY: the share of requests (by a stable hash of the user or client) sent to `new`.
    canary_percent: int = 0
    # COHORT: the legacy user ids (or new user ids) whose requests go to `new`.
    cohort: list[Any] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    # Set by a migration's cutover: legacy writes under this prefix are refused.
    legacy_writes_frozen: bool = False
    updated_at: datetime = timestamp(server_now=True)
    updated_by: str = Field(max_length=100, default="system")


class ShadowDiff(SQLModel, table=True):
    """One shadow comparison that disagreed: where, and what differed, never the values.

    Only the statuses and the JSON paths that differ (with the kind of difference) are kept, so
    no personal data from either answer is stored; `summary` is bounded by the gateway.
    """

    __tablename__ = "gateway_shadow_diffs"

    id: int | None = Field(default=None, primary_key=True)
    route_prefix: str = Field(max_length=200, index=True)
    method: str = Field(max_length=10)
    path_template: str = Field(max_length=300)  # ids replaced by {id}
    legacy_status: int
    new_status: int | None = None  # None: the new side did not answer (error or timeout)
    kind: str = Field(max_length=10)  # status | body | error
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    request_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = timestamp(server_now=True)


class ShadowCount(SQLModel, table=True):
    """Shadow comparisons per route prefix, so a diff rate can be computed (the migration's
    verification step asks for it)."""

    __tablename__ = "gateway_shadow_counts"

    route_prefix: str = Field(primary_key=True, max_length=200)
    compared: int = Field(default=0, sa_type=BigInteger)
    differed: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime = timestamp(server_now=True)
