"""The security audit workflow's stored report (passing, and failing on a tampered audit
chain), and the compliance report against seeded patterns, in JSON and CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text

from activities import ledger
from api.services import Services
from core.db import SessionFactory, transaction
from models.audit import record_audit
from models.base import utcnow
from models.ledger.payloads import LedgerTransferInput
from models.staff.tables import StaffRole
from tests.ledger_support import funded_account, new_user, run
from tests.rail_support import eventually
from tests.security_support import Member, new_member

THRESHOLD = 1_000_000  # the default large-value threshold (10 000.00 EUR)


async def _finished_audit(api: httpx.AsyncClient, member: Member) -> dict[str, Any]:
    started = await api.post("/api/security/audit", headers=member.auth)
    assert started.status_code == 202, started.text

    async def done() -> dict[str, Any] | None:
        report = await api.get(started.json()["status_url"], headers=member.auth)
        body: dict[str, Any] = report.json()
        return body if body["status"] != "running" else None

    return await eventually(done, max_wait=20, interval=0.1)


async def test_the_security_audit_stores_a_passing_report_of_every_check(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    compliance = await new_member(services, "comp@bank.example", StaffRole.COMPLIANCE)
    await funded_account(sessions, await new_user(sessions), 10_000)

    report = await _finished_audit(api, compliance)

    assert report["status"] == "passed"
    sections = report["sections"]
    assert sections["audit_chain"]["ok"] is True
    assert sections["audit_chain"]["events"] >= 2
    assert sections["ledger"]["ok"] is True
    findings = {f["check"]: f["status"] for f in sections["configuration"]["findings"]}
    assert findings["secret_key_not_default"] == "pass"  # the tests set their own
    assert findings["rail_webhook_secret_not_default"] == "warn"  # the dev default, not prod
    assert findings["public_url"] == "warn"
    assert findings["access_token_lifetime"] == "pass"
    assert findings["staff_token_lifetime"] == "pass"


async def test_a_tampered_audit_log_fails_the_audit(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    compliance = await new_member(services, "comp@bank.example", StaffRole.COMPLIANCE)
    async with transaction(sessions) as session:  # an insider edits history behind the trigger
        await session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        await session.execute(
            text('UPDATE audit_log SET details = \'{"role": "admin"}\' WHERE id = 1')
        )
        await session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))

    report = await _finished_audit(api, compliance)

    assert report["status"] == "failed"
    assert report["sections"]["audit_chain"] == {
        "ok": False,
        "error": "audit chain broken at event 1",
    }
    assert report["sections"]["ledger"]["ok"] is True


async def _transfer(
    sessions: SessionFactory, source: uuid.UUID, to: uuid.UUID, amount: int
) -> None:
    await run(
        sessions,
        ledger.transfer,
        LedgerTransferInput(
            idempotency_key=f"t-{uuid.uuid4()}",
            from_account_id=source,
            to_account_id=to,
            amount=amount,
            currency="EUR",
        ),
    )


async def test_the_compliance_report_finds_the_seeded_patterns(
    api: httpx.AsyncClient, services: Services, sessions: SessionFactory
) -> None:
    compliance = await new_member(services, "comp@bank.example", StaffRole.COMPLIANCE)
    mallory, bob, carol = [await new_user(sessions, n) for n in ("mallory", "bob", "carol")]
    big = await funded_account(sessions, mallory, 5 * THRESHOLD)  # large value in
    bobs = await funded_account(sessions, bob, 0)
    for _ in range(4):  # structuring: each just below the threshold
        await _transfer(sessions, big, bobs, THRESHOLD - 50_000)
    await _transfer(sessions, big, bobs, THRESHOLD // 2)  # far below: not in the band
    carols = await funded_account(sessions, carol, 10_000)
    async with transaction(sessions) as session:  # carol's last move was 400 days ago
        await session.execute(
            text(
                "UPDATE transactions SET occurred_at = now() - interval '400 days' "
                "WHERE account_id = :a"
            ),
            {"a": carols},
        )
        for accepted in (None, None, False):  # two wrong passwords, one wrong code
            action = "login.failed" if accepted is None else "login.mfa"
            details = {} if accepted is None else {"accepted": False}
            await record_audit(session, action, client="203.0.113.9", details=details)
    await _transfer(sessions, carols, bobs, 500)  # ... and she wakes up
    now = utcnow()
    period = {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }
    earlier = {
        "from": (now - timedelta(days=3)).isoformat(),
        "to": (now - timedelta(days=2)).isoformat(),
    }

    report = await api.get(
        "/api/security/compliance/report", params=period, headers=compliance.auth
    )
    quiet = await api.get(
        "/api/security/compliance/report", params=earlier, headers=compliance.auth
    )
    as_csv = await api.get(
        "/api/security/compliance/report",
        params=period | {"format": "csv"},
        headers=compliance.auth,
    )

    assert report.status_code == 200, report.text
    body = report.json()
    assert [(r["account_id"], r["amount"], r["direction"]) for r in body["large_value"]] == [
        (str(big), 5 * THRESHOLD, "credit")
    ]
    assert [(s["user_id"], s["count"], s["total"]) for s in body["structuring"]] == [
        (str(mallory), 4, 4 * (THRESHOLD - 50_000))
    ]
    assert [(w["account_id"], w["dormant_days"]) for w in body["dormant_woken"]] == [
        (str(carols), 400)
    ]
    assert body["mfa_coverage"] == {
        "active_users": 4,
        "with_mfa": 1,
        "staff": 1,
        "staff_with_mfa": 1,
    }
    assert body["failed_logins"] == {
        "failed_passwords": 2,
        "failed_second_factors": 1,
        "distinct_clients": 1,
        "refresh_token_reuse": 0,
    }
    assert body["audit_chain"]["ok"] is True
    q = quiet.json()
    assert (q["large_value"], q["structuring"], q["dormant_woken"]) == ([], [], [])
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["section"] for r in rows if r["section"] != "figure"] == [
        "large_value",
        "structuring",
        "dormant_woken",
        "audit_chain",
    ]
    assert {r["subject"]: r["value"] for r in rows if r["section"] == "figure"}["with_mfa"] == "1"
