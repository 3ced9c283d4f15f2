"""The recorded histories the replay tests name are exactly the files on disk."""

from __future__ import annotations

from tests.replay_support import HISTORIES, RECORDED


def test_every_recorded_history_is_replayed_and_every_named_one_exists() -> None:
    on_disk = {p.stem for p in HISTORIES.glob("*.json")}
    named = {name for names in RECORDED.values() for name in names}

    assert len(named) == 17
    assert on_disk == named
