"""Staff checks: roles in the access token, confirmed in PostgreSQL, and the role each route
declares in the OpenAPI document (`x-roles`).

A caller without one of the route's roles, or without a valid token at all, gets the same 404
as a route that does not exist (DESIGN: a customer token on a staff route is 404), so customers
cannot map the staff API. An authenticated caller refused this way is audited (`staff.denied`);
an admitted one is audited too (`staff.access`: who, which route), so every staff action is on
the record even when the route itself changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.deps import (
    Caller,
    ClientDep,
    Credentials,
    ServicesDep,
    access_claims,
    current_caller,
    registration_claims,
)
from api.services import Services
from core.db import transaction
from core.errors import AppError
from models.audit import record_audit
from models.staff.tables import StaffRole, StaffRoleGrant

ROLES_ATTRIBUTE = "__vortex_roles__"
PUBLIC, USER, REGISTRATION = "public", "user", "registration"


class StaffOnly(AppError):
    """Answered to a caller without the route's role: the body of any unknown route's 404."""

    status, type, title = 404, "not-found", "Not Found"


@dataclass(frozen=True, slots=True)
class StaffCaller(Caller):
    """A staff member acting through a staff route, with the roles confirmed in PostgreSQL."""

    roles: tuple[str, ...] = ()

    @property
    def actor(self) -> str:
        """How ops functions name this actor in their own audit rows."""
        return f"staff:{self.id}"


async def staff_roles(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    """The roles a user holds (empty for a customer), sorted."""
    rows = await session.execute(
        select(col(StaffRoleGrant.role)).where(col(StaffRoleGrant.user_id) == user_id)
    )
    return sorted(str(role) for role in rows.scalars())


def require_roles(*roles: StaffRole) -> Callable[..., Awaitable[StaffCaller]]:
    """A dependency: the caller if they hold one of `roles`, else 404 `not-found`. Use as
    `Annotated[StaffCaller, Depends(require_roles(StaffRole.OPS, ...))]`; the roles become the
    route's `x-roles` (see `declare_roles`)."""
    wanted = {role.value for role in roles}

    async def staff_caller(
        request: Request, services: ServicesDep, credentials: Credentials, client: ClientDep
    ) -> StaffCaller:
        try:
            claims = await access_claims(services, credentials)
        except AppError as exc:
            raise StaffOnly("Not Found") from exc  # no token: not even a 401 reveals the route
        claimed = claims.extra.get("roles")
        held: list[str] = []
        if isinstance(claimed, list) and wanted.intersection(map(str, claimed)):
            # A revoked role stops working at once, not when the token expires.
            async with services.reads() as session:
                held = await staff_roles(session, claims.subject)
        admitted = sorted(wanted.intersection(held))
        async with transaction(services.sessions) as session:
            await record_audit(
                session,
                "staff.access" if admitted else "staff.denied",
                actor_user_id=claims.subject,
                subject=f"{request.method} {request.url.path}"[:200],
                client=client,
                details={"route_roles": sorted(wanted), "roles": admitted},
            )
        if not admitted:
            raise StaffOnly("Not Found")
        return StaffCaller(claims.subject, str(claims.extra.get("sid")), tuple(held))

    setattr(staff_caller, ROLES_ATTRIBUTE, sorted(wanted))
    return staff_caller


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def route_roles(route: APIRoute) -> list[str]:
    """Who a route admits, read from its dependencies: staff roles, `user` (any logged-in
    user), `registration` (a registration token) or `public`."""
    calls = list(_calls(route.dependant))
    for call in calls:
        if (roles := getattr(call, ROLES_ATTRIBUTE, None)) is not None:
            return list(roles)
    if any(call is access_claims or call is current_caller for call in calls):
        return [USER]
    if any(call is registration_claims for call in calls):
        return [REGISTRATION]
    return [PUBLIC]


def declare_roles(router: APIRouter) -> None:
    """Write each route's roles into its OpenAPI operation as `x-roles` (the role matrix test
    and the README's role table read them from there); call before including the router."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            route.openapi_extra = {**(route.openapi_extra or {}), "x-roles": route_roles(route)}


async def audit_staff_action(
    services: Services, staff: StaffCaller, action: str, subject: str, client: str, **details: str
) -> None:
    """Record a staff route's action (who, on what, from where, and why) in the audit log."""
    async with transaction(services.sessions) as session:
        await record_audit(
            session, action, actor_user_id=staff.id, subject=subject, client=client, details=details
        )
