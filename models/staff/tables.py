"""Staff roles: the smallest store a staff route can check (the staff issue extends it)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, String
from sqlmodel import Field, SQLModel

from models.base import sql_in, timestamp


class StaffRole(StrEnum):
    """Roles of bank staff; a user without any is a customer."""

    SUPPORT = "support"
    OPS = "ops"
    COMPLIANCE = "compliance"
    ADMIN = "admin"


class StaffRoleGrant(SQLModel, table=True):
    """One role held by one user (granted and revoked by `vortex staff`, audited)."""

    __tablename__ = "staff_roles"
    __table_args__ = (CheckConstraint(sql_in("role", StaffRole), name="ck_staff_roles_role"),)

    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    role: StaffRole = Field(sa_type=String(16), primary_key=True)
    granted_by: str = Field(max_length=100)
    granted_at: datetime = timestamp(server_now=True)
