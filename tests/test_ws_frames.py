"""The frame-type table against the event catalogue, and the resume cursor's encoding."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from activities.events.streams import STREAMS
from api.ws import cursor
from api.ws.events import FRAME_TYPES, SERVER_ONLY, parse_entry

CATALOGUE = Path(__file__).resolve().parents[1] / "docs" / "events.md"


def test_every_event_type_in_the_catalogue_is_decided_for_clients() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", CATALOGUE.read_text(), re.M))
    assert documented, "no event types found in docs/events.md"
    assert documented - set(FRAME_TYPES) - SERVER_ONLY == set()
    assert not set(FRAME_TYPES) & SERVER_ONLY


def test_a_created_transaction_is_a_transaction_new_frame_and_unknown_types_are_dropped() -> None:
    fields = {"event_id": "1", "type": "transaction.created", "channels": '["user.u"]'}
    entry = parse_entry("transaction.events", "1-0", fields | {"data": '{"amount": 5}'})
    assert entry is not None
    assert (entry.frame_type, entry.channels, entry.data) == (
        "transaction.new",
        ("user.u",),
        {"amount": 5},
    )
    assert parse_entry("user.events", "2-0", fields | {"type": "secret.internal"}) is None
    assert parse_entry("user.events", "3-0", fields | {"data": "not json"}) is None


def test_a_cursor_round_trips_every_streams_position() -> None:
    positions = {s: (1_700_000_000_000 + n, n) for n, s in enumerate(STREAMS)}
    assert cursor.decode(cursor.encode(positions)) == positions


@pytest.mark.parametrize(
    "garbled",
    ["", "x", "djE6MC0w", cursor.encode({})[:-2], "v1:1-0:2-0:3-0", "djI6MS0wOjItMDozLTA"],
)
def test_a_garbled_cursor_decodes_to_nothing(garbled: str) -> None:
    assert cursor.decode(garbled) is None
