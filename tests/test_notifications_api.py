"""The notification routes: keyset pages with an unread count, read, delete, preferences and
templates; another user's notice is a 404, invalid preferences a 422."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.services import Services
from core.db import SessionFactory
from tests.notifications_support import add_notices, person


async def test_notices_come_in_keyset_pages_newest_first_with_the_unread_count(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    ada = await person(services, "ada")
    ids = [str(i) for i in await add_notices(sessions, ada.id, 5)]
    await api.put(f"/api/notifications/{ids[3]}/read", headers=ada.headers)

    first = (await api.get("/api/notifications?limit=2", headers=ada.headers)).json()
    second = (
        await api.get(
            f"/api/notifications?limit=2&cursor={first['next_cursor']}", headers=ada.headers
        )
    ).json()
    third = (
        await api.get(
            f"/api/notifications?limit=2&cursor={second['next_cursor']}", headers=ada.headers
        )
    ).json()
    unread = (await api.get("/api/notifications?unread=true", headers=ada.headers)).json()

    assert [n["id"] for n in first["items"] + second["items"] + third["items"]] == ids[::-1]
    assert third["next_cursor"] is None
    assert first["unread_count"] == second["unread_count"] == 4
    assert [n["read"] for n in first["items"]] == [False, True]
    assert [n["id"] for n in unread["items"]] == [ids[4], ids[2], ids[1], ids[0]]


async def test_a_cursor_of_the_unread_list_is_refused_by_the_full_list(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    ada = await person(services, "ada")
    await add_notices(sessions, ada.id, 3)
    page = await api.get("/api/notifications?unread=true&limit=1", headers=ada.headers)

    other = await api.get(
        f"/api/notifications?cursor={page.json()['next_cursor']}", headers=ada.headers
    )
    oversized = await api.get("/api/notifications?limit=101", headers=ada.headers)

    assert other.status_code == 422
    assert other.json()["type"].endswith("/invalid-cursor")
    assert oversized.status_code == 422


async def test_another_users_notice_is_not_found_for_read_and_delete(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    ada, bob = await person(services, "ada"), await person(services, "bob")
    [notice] = await add_notices(sessions, ada.id, 1)

    read = await api.put(f"/api/notifications/{notice}/read", headers=bob.headers)
    deleted = await api.delete(f"/api/notifications/{notice}", headers=bob.headers)
    still = (await api.get("/api/notifications", headers=ada.headers)).json()

    assert (read.status_code, deleted.status_code) == (404, 404)
    assert read.json()["type"].endswith("/not-found")
    assert [n["read"] for n in still["items"]] == [False]


async def test_a_deleted_notice_leaves_the_list_and_cannot_be_read(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    ada = await person(services, "ada")
    keep, gone = await add_notices(sessions, ada.id, 2)

    deleted = await api.delete(f"/api/notifications/{gone}", headers=ada.headers)
    again = await api.delete(f"/api/notifications/{gone}", headers=ada.headers)
    read = await api.put(f"/api/notifications/{gone}/read", headers=ada.headers)
    listed = (await api.get("/api/notifications", headers=ada.headers)).json()

    assert (deleted.status_code, again.status_code, read.status_code) == (204, 404, 404)
    assert [n["id"] for n in listed["items"]] == [str(keep)]
    assert listed["unread_count"] == 1


async def test_marking_read_is_idempotent_and_lowers_the_unread_count(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    ada = await person(services, "ada")
    [notice] = await add_notices(sessions, ada.id, 1)

    first = await api.put(f"/api/notifications/{notice}/read", headers=ada.headers)
    second = await api.put(f"/api/notifications/{notice}/read", headers=ada.headers)
    listed = (await api.get("/api/notifications", headers=ada.headers)).json()

    assert first.status_code == second.status_code == 200
    assert first.json()["read"] is True
    assert listed["unread_count"] == 0


async def test_preferences_start_as_defaults_and_keep_what_is_not_changed(
    api: httpx.AsyncClient, services: Services
) -> None:
    ada = await person(services, "ada")
    defaults = (await api.get("/api/notifications/preferences", headers=ada.headers)).json()

    await api.post(
        "/api/notifications/preferences",
        headers=ada.headers,
        json={
            "locale": "de",
            "time_zone": "Europe/Berlin",
            "quiet_hours": {"start": "22:00", "end": "07:00"},
            "channels": {"insights": {"email": True}, "payments": {"push": False}},
        },
    )
    await api.post(
        "/api/notifications/preferences",
        headers=ada.headers,
        json={"channels": {"payments": {"email": False}}},
    )
    after = (await api.get("/api/notifications/preferences", headers=ada.headers)).json()
    cleared = await api.post(
        "/api/notifications/preferences", headers=ada.headers, json={"quiet_hours": None}
    )

    assert defaults["locale"] == "en"
    assert defaults["quiet_hours"] is None
    assert defaults["channels"]["payments"] == {"in_app": True, "email": True, "push": True}
    assert (after["locale"], after["time_zone"]) == ("de", "Europe/Berlin")
    assert after["quiet_hours"] == {"start": "22:00:00", "end": "07:00:00"}
    assert after["channels"]["payments"] == {"in_app": True, "email": False, "push": False}
    assert after["channels"]["insights"]["email"] is True
    assert cleared.json()["quiet_hours"] is None
    assert cleared.json()["channels"]["payments"]["push"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"channels": {"gossip": {"email": True}}},
        {"channels": {"payments": {"pigeon": True}}},
        {"channels": {"security": {"email": False}}},
        {"time_zone": "Mars/Olympus_Mons"},
        {"time_zone": "../../etc/passwd"},
        {"quiet_hours": {"start": "22:00", "end": "22:00"}},
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        {"locale": "fr"},
        {"colour": "blue"},
    ],
)
async def test_invalid_preferences_are_refused_with_422_and_change_nothing(
    api: httpx.AsyncClient, services: Services, body: dict[str, Any]
) -> None:
    ada = await person(services, "ada")
    before = (await api.get("/api/notifications/preferences", headers=ada.headers)).json()

    refused = await api.post("/api/notifications/preferences", headers=ada.headers, json=body)
    after = (await api.get("/api/notifications/preferences", headers=ada.headers)).json()

    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith("/validation-error")
    assert after == before


async def test_the_templates_list_their_locales_and_variables(
    api: httpx.AsyncClient, services: Services
) -> None:
    ada = await person(services, "ada")

    listed = await api.get("/api/notifications/templates", headers=ada.headers)
    anonymous = await api.get("/api/notifications/templates")

    templates = {t["key"]: t for t in listed.json()["items"]}
    assert templates["card.large_transaction"] == {
        "key": "card.large_transaction",
        "category": "payments",
        "locales": ["de", "en"],
        "variables": ["amount", "merchant"],
    }
    assert templates["security.login_new_device"]["category"] == "security"
    assert {"report.ready", "money.received", "payment.requires_action"} <= set(templates)
    assert anonymous.status_code == 401
