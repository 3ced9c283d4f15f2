"""The rail simulator keeps its payments across restarts (a SQLite file), as a real rail does:
a restarted rail still knows a payment by its reference and settles a pending one."""

from __future__ import annotations

from pathlib import Path

from tests.rail_support import eventually, payment_body, running_rail


async def test_a_restarted_rail_still_knows_its_payments_and_settles_the_pending_one(
    tmp_path: Path,
) -> None:
    state = tmp_path / "railsim.sqlite3"
    async with running_rail(None, state_file=state, settle_delay_seconds=0.0) as rail:
        settled = await rail.post("/v1/payments", json=payment_body("ref-settled"))
        assert settled.status_code == 202, settled.text

        async def done() -> bool | None:
            found = (await rail.get("/v1/payments/by-reference/ref-settled")).json()
            return True if found["status"] == "settled" else None

        await eventually(done)
        await rail.post("/v1/control", json={"settle_delay_seconds": 3600})
        pending = await rail.post("/v1/payments", json=payment_body("ref-pending"))
        assert pending.status_code == 202, pending.text

    async with running_rail(None, state_file=state, settle_delay_seconds=0.0) as restarted:
        kept = (await restarted.get("/v1/payments/by-reference/ref-settled")).json()
        again = await restarted.post("/v1/payments", json=payment_body("ref-settled"))

        async def pending_settled() -> dict[str, object] | None:
            found = (await restarted.get("/v1/payments/by-reference/ref-pending")).json()
            return dict(found) if found["status"] == "settled" else None

        later = await eventually(pending_settled)
        unknown = await restarted.get("/v1/payments/by-reference/never-sent")

    assert kept["rail_payment_id"] == settled.json()["rail_payment_id"]
    assert kept["status"] == "settled"
    assert again.status_code == 200  # the same payment, not a second one
    assert again.json()["rail_payment_id"] == settled.json()["rail_payment_id"]
    assert later["rail_payment_id"] == pending.json()["rail_payment_id"]
    assert unknown.status_code == 404
