"""Payment methods (beneficiaries with a checked IBAN, card tokens) and the IBAN rules."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from core.db import SessionFactory
from core.email import MemoryEmailBackend
from core.iban import IBAN_LENGTHS, IbanError, format_iban, validate_iban
from models.payments.tables import PaymentMethod
from tests.flows import Customer, register_customer

SEPA_AND_MORE = {
    "DE": "DE89370400440532013000",
    "GB": "GB82WEST12345698765432",
    "FR": "FR1420041010050500013M02606",
    "NL": "NL91ABNA0417164300",
    "BE": "BE68539007547034",
    "CH": "CH9300762011623852957",
    "NO": "NO9386011117947",
    "ES": "ES9121000418450200051332",
    "IT": "IT60X0542811101000000123456",
    "AT": "AT611904300234573201",
    "PL": "PL61109010140000071219812874",
    "MT": "MT84MALT011000012345MTLCAST001S",
    "SE": "SE4550000000058398257466",
    "DK": "DK5000400440116243",
    "FI": "FI2112345600000785",
    "IE": "IE29AIBK93115212345678",
    "PT": "PT50000201231234567890154",
}


@pytest.mark.parametrize(("country", "iban"), sorted(SEPA_AND_MORE.items()))
def test_valid_ibans_pass_and_match_the_country_length(country: str, iban: str) -> None:
    assert validate_iban(iban) == iban
    assert len(iban) == IBAN_LENGTHS[country]


def test_ibans_are_normalised_from_their_printed_form() -> None:
    assert validate_iban(" de89 3704 0044 0532 0130 00 ") == "DE89370400440532013000"
    assert validate_iban("ch93-0076-2011-6238-5295-7") == "CH9300762011623852957"
    assert format_iban("DE89370400440532013000") == "DE89 3704 0044 0532 0130 00"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("DE88370400440532013000", "check digits"),  # one check digit off
        ("DE89370400440532013001", "check digits"),  # one BBAN digit off
        ("GB82WEST12345698765423", "check digits"),  # two digits swapped
        ("DE8937040044053201300", "22 characters"),  # too short
        ("DE893704004405320130000", "22 characters"),  # too long
        ("NO938601111794", "15 characters"),
        ("XX89370400440532013000", "not supported"),
        ("US12345678901234567890", "not supported"),
        ("DE89 3704 0044 0532 0130 0!", "country code"),
        ("1234567890", "country code"),
        ("", "empty"),
    ],
)
def test_bad_ibans_are_refused_with_a_reason(raw: str, why: str) -> None:
    with pytest.raises(IbanError, match=why):
        validate_iban(raw)


@pytest.fixture
async def alice(api: httpx.AsyncClient, outbox: MemoryEmailBackend) -> Customer:
    """A registered customer."""
    return await register_customer(api, outbox, "alice@example.com")


async def test_beneficiaries_are_saved_listed_and_soft_deleted(
    api: httpx.AsyncClient, alice: Customer, sessions: SessionFactory
) -> None:
    saved = await api.post(
        "/api/payments/methods",
        headers=alice.auth,
        json={"name": "Grace Hopper", "iban": "gb82 west 1234 5698 7654 32"},
    )
    card = await api.post(
        "/api/payments/methods",
        headers=alice.auth,
        json={"card_token": "tok_1PqRsTuVwXyZ", "last4": "4242"},
    )

    assert saved.status_code == 201, saved.text
    assert saved.json()["iban"] == "GB82WEST12345698765432"
    assert saved.json()["kind"] == "iban"
    assert card.status_code == 201, card.text
    assert card.json()["card_last4"] == "4242"
    assert card.json()["name"] == "Card ending 4242"
    assert "card_token" not in card.json()
    listed = await api.get("/api/payments/methods", headers=alice.auth)
    assert listed.status_code == 200  # not swallowed by /api/payments/{payment_id}
    assert [m["id"] for m in listed.json()["items"]] == [card.json()["id"], saved.json()["id"]]

    deleted = await api.delete(f"/api/payments/methods/{saved.json()['id']}", headers=alice.auth)

    assert deleted.status_code == 204
    listed = await api.get("/api/payments/methods", headers=alice.auth)
    assert [m["id"] for m in listed.json()["items"]] == [card.json()["id"]]
    again = await api.delete(f"/api/payments/methods/{saved.json()['id']}", headers=alice.auth)
    assert again.status_code == 404
    async with sessions() as session:
        rows = {m.id: m for m in (await session.execute(select(PaymentMethod))).scalars()}
    kept = rows[uuid.UUID(saved.json()["id"])]
    assert kept.deleted_at is not None  # soft: past payments keep their beneficiary
    stored_card = rows[uuid.UUID(card.json()["id"])]
    assert (stored_card.card_token, stored_card.card_last4, stored_card.iban) == (
        "tok_1PqRsTuVwXyZ",
        "4242",
        None,
    )


async def test_another_customers_methods_are_invisible(
    api: httpx.AsyncClient, alice: Customer, outbox: MemoryEmailBackend
) -> None:
    bob = await register_customer(api, outbox, "bob@example.com")
    saved = await api.post(
        "/api/payments/methods",
        headers=alice.auth,
        json={"name": "Grace Hopper", "iban": "DE89370400440532013000"},
    )

    listed = await api.get("/api/payments/methods", headers=bob.auth)
    stolen = await api.delete(f"/api/payments/methods/{saved.json()['id']}", headers=bob.auth)
    unknown = await api.delete(f"/api/payments/methods/{uuid.uuid4()}", headers=bob.auth)

    assert listed.json()["items"] == []
    assert stolen.status_code == 404
    assert unknown.status_code == 404
    assert len((await api.get("/api/payments/methods", headers=alice.auth)).json()["items"]) == 1


async def test_bad_payment_methods_are_refused(api: httpx.AsyncClient, alice: Customer) -> None:
    async def post(body: dict[str, object]) -> httpx.Response:
        return await api.post("/api/payments/methods", headers=alice.auth, json=body)

    answers = {
        "bad checksum": await post({"name": "X", "iban": "DE88370400440532013000"}),
        "wrong length": await post({"name": "X", "iban": "DE8937040044053201300"}),
        "unknown country": await post({"name": "X", "iban": "ZZ89370400440532013000"}),
        "no name": await post({"iban": "DE89370400440532013000"}),
        "both kinds": await post(
            {"name": "X", "iban": "DE89370400440532013000", "card_token": "tok_abcdefgh"}
        ),
        "neither": await post({"name": "X"}),
        "card number": await post({"card_token": "4242424242424242"}),
        "bad last4": await post({"card_token": "tok_abcdefgh", "last4": "42a2"}),
        "unknown field": await post({"name": "X", "iban": "DE89370400440532013000", "x": 1}),
    }

    assert {k: v.status_code for k, v in answers.items()} == dict.fromkeys(answers, 422)
    assert answers["bad checksum"].json()["type"].endswith("/invalid-iban")
    assert "check digits" in answers["bad checksum"].json()["detail"]
    assert "22 characters" in answers["wrong length"].json()["detail"]
    assert answers["card number"].json()["type"].endswith("/invalid-card-token")
    assert (await api.get("/api/payments/methods", headers=alice.auth)).json()["items"] == []
    unauthenticated = await api.get("/api/payments/methods")
    assert unauthenticated.status_code == 401
