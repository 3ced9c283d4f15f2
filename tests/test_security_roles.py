"""Staff roles: every route declares who it admits (`x-roles` in the OpenAPI document), and a
matrix of every principal against every route finds exactly the admitted ones; staff routes
are 404 to everyone else, like a route that does not exist (and the refusal is audited)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import text

from api.services import Services
from cli.staff import change_role, create
from core.db import SessionFactory
from core.settings import Settings
from models.audit import verify_audit_chain
from models.staff.tables import StaffRole
from tests.security_support import PRINCIPALS, Member, audit_rows, mint, new_member

KNOWN_LABELS = {"public", "user", "registration"} | {r.value for r in StaffRole}


@pytest.fixture
async def members(services: Services) -> dict[str, Member]:
    """One member of each principal that has a token."""
    made = {"customer": await new_member(services, "cust@example.com", None)}
    for role in StaffRole:
        made[role.value] = await new_member(services, f"{role.value}@bank.example", role)
    return made


async def _openapi(api: httpx.AsyncClient) -> dict[str, Any]:
    answer = await api.get("/openapi.json")
    assert answer.status_code == 200
    doc: dict[str, Any] = answer.json()
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    return [
        (method.upper(), path, op.get("x-roles"))
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    ]


def _unknown_route_shape(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    body = dict(response.json())
    for per_request in ("instance", "request_id"):
        body.pop(per_request, None)
    return response.status_code, body


def _readiness_report(response: httpx.Response) -> bool:
    """`/ready`'s documented 503 is its verdict on a slow dependency (a loaded CI machine can
    take longer than the probe timeout), not a server error; admission is what this checks."""
    if response.status_code != 503 or response.url.path != "/ready":
        return False
    body = response.json()
    return body.get("status") == "unavailable" and bool(body.get("down"))


async def test_every_route_declares_the_roles_it_admits(api: httpx.AsyncClient) -> None:
    operations = _operations(await _openapi(api))

    undeclared = [(m, p) for m, p, roles in operations if not roles]
    unknown = [(m, p, r) for m, p, r in operations if r and not set(r) <= KNOWN_LABELS]
    assert len(operations) > 50
    assert undeclared == []
    assert unknown == []
    staff_paths = {p for _, p, r in operations if r and set(r) & {s.value for s in StaffRole}}
    assert {"/api/staff/ops/payments", "/api/staff/break-glass"} <= staff_paths


async def test_role_matrix_every_principal_against_every_route(
    api: httpx.AsyncClient, services: Services, members: dict[str, Member]
) -> None:
    nowhere = _unknown_route_shape(await api.get("/api/no-such-route"))
    mismatches: list[str] = []
    checked = 0
    for method, path, roles in _operations(await _openapi(api)):
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        for principal in PRINCIPALS:
            headers = {} if principal == "anonymous" else mint(services, members[principal])
            kwargs: dict[str, Any] = {"headers": headers}
            if method in {"POST", "PUT", "PATCH"}:
                kwargs["json"] = {}
            response = await api.request(method, url, **kwargs)
            checked += 1
            hidden = response.status_code == 404 and _unknown_route_shape(response) == nowhere
            unauthenticated = response.status_code == 401
            crashed = response.status_code >= 500 and not _readiness_report(response)
            if "public" in roles:
                wrong = hidden
            elif "user" in roles:
                wrong = unauthenticated != (principal == "anonymous") or hidden
            elif "registration" in roles:
                wrong = not unauthenticated
            else:
                wrong = hidden != (principal not in roles) or unauthenticated
            wrong = wrong or crashed
            if wrong:
                mismatches.append(
                    f"{principal} {method} {path} {roles}: {response.status_code} {response.text}"
                )
    assert checked == len(PRINCIPALS) * len(_operations(await _openapi(api)))
    assert mismatches == []


async def test_a_customer_on_a_staff_route_gets_the_unknown_route_404_and_is_audited(
    api: httpx.AsyncClient, members: dict[str, Member], sessions: SessionFactory
) -> None:
    customer, ops = members["customer"], members["ops"]

    refused = await api.get("/api/staff/ops/payments?status=processing", headers=customer.auth)
    anonymous = await api.get("/api/staff/ops/payments?status=processing")
    admitted = await api.get("/api/staff/ops/payments?status=processing", headers=ops.auth)

    nowhere = await api.get("/api/staff/ops/no-such-thing", headers=customer.auth)
    assert refused.status_code == anonymous.status_code == nowhere.status_code == 404
    assert refused.json()["type"] == nowhere.json()["type"]
    assert refused.json()["detail"] == nowhere.json()["detail"]
    assert admitted.status_code == 200, admitted.text
    denied = await audit_rows(sessions, "staff.denied")
    assert [(d.actor_user_id, d.subject) for d in denied] == [
        (customer.user_id, "GET /api/staff/ops/payments")
    ]
    access = await audit_rows(sessions, "staff.access")
    assert [(a.actor_user_id, a.details["roles"]) for a in access] == [(ops.user_id, ["ops"])]


async def test_a_revoked_role_stops_working_before_the_token_expires(
    api: httpx.AsyncClient, members: dict[str, Member], settings: Settings
) -> None:
    ops = members["ops"]
    before = await api.get("/api/staff/ops/payments?status=failed", headers=ops.auth)
    await change_role(settings, "revoke", "ops@bank.example", "ops", "left the team")
    after = await api.get("/api/staff/ops/payments?status=failed", headers=ops.auth)

    assert before.status_code == 200
    assert after.status_code == 404


async def test_staff_create_prints_one_time_credentials_and_staff_log_in_with_mfa(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    said = await create(settings, "Grace@Bank.example", "compliance")
    password = re.search(r"password \(shown once\): (\S+)", said)
    uri = re.search(r"(otpauth://\S+)", said)
    assert password, said
    assert uri, said
    secret = pyotp.parse_uri(uri.group(1)).secret

    without_code = await api.post(
        "/api/auth/login", json={"email": "grace@bank.example", "password": password.group(1)}
    )
    logged_in = await api.post(
        "/api/auth/login",
        json={
            "challenge_token": without_code.json().get("challenge_token"),
            "totp_code": pyotp.TOTP(secret).now(),
        },
    )
    again = await create(settings, "grace@bank.example", "ops")

    assert without_code.status_code == 401  # MFA is required of staff like of everyone
    assert logged_in.status_code == 200, logged_in.text
    assert logged_in.json()["expires_in"] == settings.staff_access_token_ttl_seconds
    assert settings.staff_access_token_ttl_seconds < settings.access_token_ttl_seconds
    assert "granted" in again
    assert "password" not in again


async def test_break_glass_needs_a_reason_is_time_boxed_and_leaves_an_audit_trail(
    api: httpx.AsyncClient, members: dict[str, Member], sessions: SessionFactory
) -> None:
    support, customer = members["support"], members["customer"]
    other_support = members["admin"]  # not support: the route hides itself from admin too
    read_url = f"/api/staff/customers/{customer.user_id}"

    before = await api.get(read_url, headers=support.auth)
    no_reason = await api.post(
        "/api/staff/break-glass", headers=support.auth, json={"customer_id": str(customer.user_id)}
    )
    grant = await api.post(
        "/api/staff/break-glass",
        headers=support.auth,
        json={"customer_id": str(customer.user_id), "reason": "ticket 4711: card blocked"},
    )
    during = await api.get(read_url, headers=support.auth)
    payments = await api.get(f"{read_url}/payments", headers=support.auth)
    by_admin = await api.get(read_url, headers=other_support.auth)
    async with sessions() as session:
        await session.execute(text("UPDATE break_glass_grants SET expires_at = now()"))
        await session.commit()
    after = await api.get(read_url, headers=support.auth)

    assert before.status_code == 403
    assert before.json()["type"].endswith("/break-glass-required")
    assert no_reason.status_code == 422
    assert no_reason.json()["type"].endswith("/reason-required")
    assert grant.status_code == 201, grant.text
    assert during.status_code == 200
    assert during.json()["email"] == "cust@example.com"
    assert during.json()["grant_id"] == grant.json()["id"]
    assert payments.status_code == 200
    assert by_admin.status_code == 404
    assert after.status_code == 403
    trail = await audit_rows(
        sessions,
        "staff.break_glass",
        "staff.break_glass_refused",
        "staff.customer_read",
        "staff.customer_read_refused",
    )
    assert [(e.action, e.actor_user_id, e.subject) for e in trail] == [
        ("staff.customer_read_refused", support.user_id, str(customer.user_id)),
        ("staff.break_glass_refused", support.user_id, str(customer.user_id)),
        ("staff.break_glass", support.user_id, str(customer.user_id)),
        ("staff.customer_read", support.user_id, str(customer.user_id)),
        ("staff.customer_read", support.user_id, str(customer.user_id)),
        ("staff.customer_read_refused", support.user_id, str(customer.user_id)),
    ]
    assert trail[2].details["reason"] == "ticket 4711: card blocked"
    assert {trail[3].details["grant_id"], trail[4].details["what"]} == {
        grant.json()["id"],
        "payments",
    }
    async with sessions() as session:
        assert await verify_audit_chain(session) > len(trail)
