"""Responses of the compliance, threat, audit and privacy routes (reports and archives)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from models.base import StrictModel
from models.security.schemas import TotpCode


class ThreatSignal(BaseModel):
    """One signal: how many in the window, and what it is made of."""

    name: str
    count: int
    details: dict[str, Any]


class ThreatReport(BaseModel):
    """Every threat signal over one window."""

    generated_at: datetime
    window_minutes: int
    signals: list[ThreatSignal]


class LargeValue(BaseModel):
    """A posted transaction at or over the threshold."""

    transaction_id: uuid.UUID
    user_id: uuid.UUID
    account_id: uuid.UUID
    direction: str
    amount: int
    currency: str
    occurred_at: datetime


class StructuringSuspect(BaseModel):
    """A customer with many debits just below the threshold."""

    user_id: uuid.UUID
    currency: str
    count: int
    total: int


class WokenAccount(BaseModel):
    """An account that moved money after a dormant stretch."""

    account_id: uuid.UUID
    user_id: uuid.UUID
    dormant_days: int
    woke_at: datetime


class MfaCoverage(BaseModel):
    """Active users with MFA enabled (staff counted apart)."""

    active_users: int
    with_mfa: int
    staff: int
    staff_with_mfa: int


class FailedLogins(BaseModel):
    """Failed logins in the period."""

    failed_passwords: int
    failed_second_factors: int
    distinct_clients: int
    refresh_token_reuse: int


class ChainStatus(BaseModel):
    """The audit log's hash chain, checked now."""

    ok: bool
    events: int
    error: str | None = None


class ComplianceReport(BaseModel):
    """The compliance report of one period."""

    period_from: datetime
    period_to: datetime
    generated_at: datetime
    large_value_threshold: int
    large_value: list[LargeValue]
    structuring: list[StructuringSuspect]
    dormant_woken: list[WokenAccount]
    mfa_coverage: MfaCoverage
    failed_logins: FailedLogins
    audit_chain: ChainStatus


class AuditAccepted(BaseModel):
    """A security audit was started; read the report at `status_url`."""

    report_id: uuid.UUID
    status: str
    status_url: str


class SecurityReportPublic(BaseModel):
    """A security audit's report: a section per check."""

    id: uuid.UUID
    status: str
    sections: dict[str, Any]
    created_at: datetime
    completed_at: datetime | None


class ExportPublic(BaseModel):
    """A data export (GDPR art. 15): download the archive once it is `ready`."""

    id: uuid.UUID
    status: str
    created_at: datetime
    completed_at: datetime | None
    status_url: str
    download_url: str | None


class ErasureBody(StrictModel):
    """Erasure (GDPR art. 17) is confirmed with a fresh TOTP code."""

    totp_code: TotpCode


class KeptRecord(BaseModel):
    """What erasure keeps, and the law that requires it."""

    what: str
    why: str


class ErasureResult(BaseModel):
    """What erasure pseudonymized or deleted, and what it kept and why."""

    user_id: uuid.UUID
    erased: list[str]
    kept: list[KeptRecord]
