"""The security audit's checks: the audit hash chain, the ledger invariants and the
configuration. Each check writes its section of the report row and answers only pass/fail,
so the report never passes through the workflow's history."""

from __future__ import annotations

import json
from ipaddress import ip_network
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import text
from temporalio import activity

from activities.ledger.verify import verify_ledger
from core.db import SessionFactory, transaction
from core.settings import (
    DEV_PROCESSOR_SECRET,
    DEV_RAIL_SECRET,
    DEV_SECRET,
    Settings,
)
from models.audit import record_audit, verify_audit_chain
from models.base import utcnow
from models.security.payloads import AuditFinishInput, AuditStepInput
from models.security.tables import ReportStatus, SecurityReport

MAX_ACCESS_TTL = 15 * 60
MAX_REFRESH_TTL = 30 * 24 * 3600
_SECTION = text(
    "UPDATE security_reports SET sections = sections || jsonb_build_object("
    "CAST(:key AS TEXT), CAST(:value AS JSONB)) WHERE id = :id"
)


def _finding(check: str, status: str, detail: str) -> dict[str, str]:
    return {"check": check, "status": status, "detail": detail}


def config_findings(settings: Settings) -> list[dict[str, str]]:
    """Configuration checks: `fail` breaks the audit, `warn` is fine outside production."""
    production = settings.environment == "production"
    bad = "fail" if production else "warn"
    out = []
    for name, value, default in (
        ("secret_key", settings.secret_key, DEV_SECRET),
        ("rail_webhook_secret", settings.rail_webhook_secret, DEV_RAIL_SECRET),
        ("processor_webhook_secret", settings.processor_webhook_secret, DEV_PROCESSOR_SECRET),
    ):
        is_default = value.get_secret_value() == default
        out.append(
            _finding(
                f"{name}_not_default",
                bad if is_default else "pass",
                "the public development default" if is_default else "set",
            )
        )
    access, staff = settings.access_token_ttl_seconds, settings.staff_access_token_ttl_seconds
    out.append(
        _finding(
            "access_token_lifetime",
            "pass" if access <= MAX_ACCESS_TTL else "fail",
            f"{access} s (at most {MAX_ACCESS_TTL})",
        )
    )
    out.append(
        _finding(
            "staff_token_lifetime",
            "pass" if staff <= access else "fail",
            f"{staff} s (at most the customers' {access})",
        )
    )
    refresh = settings.refresh_token_ttl_seconds
    out.append(
        _finding(
            "refresh_token_lifetime",
            "pass" if refresh <= MAX_REFRESH_TTL else "fail",
            f"{refresh} s (at most {MAX_REFRESH_TTL})",
        )
    )
    # The API installs no CORS middleware: browsers refuse every cross-origin call.
    out.append(_finding("cors", "pass", "no cross-origin origins are allowed"))
    url = urlparse(settings.api_public_url)
    local = url.hostname in {"localhost", "127.0.0.1", "::1"}
    out.append(
        _finding(
            "public_url",
            "pass" if url.scheme == "https" and not local else bad,
            f"{settings.api_public_url} (production needs https on a public host)",
        )
    )
    everyone = any(ip_network(p).prefixlen == 0 for p in settings.trusted_proxies)
    out.append(
        _finding(
            "trusted_proxies",
            "fail" if everyone else "pass",
            "every address is trusted" if everyone else f"{len(settings.trusted_proxies)} listed",
        )
    )
    return out


class SecurityAuditActivities:
    """The audit's checks and its verdict, one transaction each (a retry rewrites a section)."""

    def __init__(self, sessions: SessionFactory, settings: Settings) -> None:
        self._sessions, self._settings = sessions, settings

    async def _write(self, inp: AuditStepInput, key: str, value: dict[str, Any]) -> None:
        async with transaction(self._sessions) as session:
            await session.execute(
                _SECTION, {"id": inp.report_id, "key": key, "value": json.dumps(value, default=str)}
            )

    @activity.defn(name="security.audit_chain")
    async def audit_chain(self, inp: AuditStepInput) -> bool:
        """Recompute the audit log's hash chain."""
        try:
            async with self._sessions() as session:
                events = await verify_audit_chain(session)
            section: dict[str, Any] = {"ok": True, "events": events}
        except ValueError as exc:
            section = {"ok": False, "error": str(exc)}
        await self._write(inp, "audit_chain", section)
        return bool(section["ok"])

    @activity.defn(name="security.audit_ledger")
    async def audit_ledger(self, inp: AuditStepInput) -> bool:
        """The ledger invariants (`vortex ledger verify`)."""
        report = await verify_ledger(self._sessions)
        await self._write(inp, "ledger", {"ok": report.ok, **report.model_dump(mode="json")})
        return report.ok

    @activity.defn(name="security.audit_config")
    async def audit_config(self, inp: AuditStepInput) -> bool:
        """The configuration checks."""
        findings = config_findings(self._settings)
        ok = all(f["status"] != "fail" for f in findings)
        await self._write(inp, "configuration", {"ok": ok, "findings": findings})
        return ok

    @activity.defn(name="security.audit_finish")
    async def audit_finish(self, inp: AuditFinishInput) -> None:
        """Record the verdict (once) and audit it."""
        async with transaction(self._sessions) as session:
            report = await session.get(SecurityReport, inp.report_id, with_for_update=True)
            if report is None or report.status != ReportStatus.RUNNING:
                return
            report.status = ReportStatus.PASSED if inp.passed else ReportStatus.FAILED
            report.completed_at = utcnow()
            await record_audit(
                session,
                "security.audit_completed",
                actor_user_id=report.requested_by,
                subject=str(report.id),
                details={"passed": inp.passed},
            )

    def all(self) -> list[object]:
        """Every audit activity (main queue)."""
        return [self.audit_chain, self.audit_ledger, self.audit_config, self.audit_finish]
