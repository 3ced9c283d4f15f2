"""Verification before a cutover: counts, per-account balances, per-account history counts,
sampled record diffs, the ledger's invariants, and the gateway's shadow-diff rate."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activities.ledger.verify import verify_ledger
from activities.migration.accounts import minor_units
from activities.migration.legacy import LegacyDatabase
from activities.migration.users import _email
from core.db import SessionFactory
from models.migration.payloads import CheckResult, VerificationReport, VerifyInput
from models.migration.tables import MigrationDomain

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
SHADOW_TABLE = "gateway_shadow_counts"  # the gateway's comparisons per route prefix


def _check(name: str, ok: bool, detail: str) -> CheckResult:
    return CheckResult(name=name, outcome=PASSED if ok else FAILED, detail=detail)


async def _mapping(session: AsyncSession, domain: MigrationDomain) -> dict[int, Any]:
    rows = await session.execute(
        text("SELECT legacy_id, new_id FROM migration_identities WHERE domain = :d"),
        {"d": domain.value},
    )
    return {int(r.legacy_id): r.new_id for r in rows}


async def _count_check(
    session: AsyncSession, legacy: LegacyDatabase, domain: MigrationDomain, mapped: int
) -> CheckResult:
    quarantined = int(
        await session.scalar(
            text("SELECT count(*) FROM migration_quarantine WHERE domain = :d"),
            {"d": domain.value},
        )
        or 0
    )
    total = await legacy.count(domain)
    return _check(
        "counts",
        total == mapped + quarantined,
        f"legacy {total}, migrated {mapped}, quarantined {quarantined}",
    )


async def _sample(session: AsyncSession, domain: MigrationDomain, size: int) -> list[int]:
    rows = await session.execute(
        text(
            "SELECT legacy_id FROM migration_identities WHERE domain = :d "
            "ORDER BY random() LIMIT :n"
        ),
        {"d": domain.value, "n": size},
    )
    return [int(r) for r in rows.scalars()]


async def _user_diffs(
    session: AsyncSession, legacy: LegacyDatabase, mapping: dict[int, Any], size: int
) -> CheckResult:
    ids = await _sample(session, MigrationDomain.USERS, size)
    diffs = 0
    for row in await legacy.rows_by_id(MigrationDomain.USERS, ids):
        new = (
            await session.execute(
                text("SELECT email, password_hash FROM users WHERE id = :id"),
                {"id": mapping[int(row["id"])]},
            )
        ).first()
        same_hash = new is not None and (
            new.password_hash == row["password_digest"] or not new.password_hash.startswith("$2")
        )
        if new is None or new.email != _email(str(row["email"])) or not same_hash:
            diffs += 1
    return _check("sampled_records", diffs == 0, f"{diffs} of {len(ids)} sampled users differ")


async def _balances(
    session: AsyncSession, legacy: LegacyDatabase, mapping: dict[int, Any]
) -> CheckResult:
    rows = await legacy.fetch("SELECT id, balance, currency FROM accounts")
    posted: dict[Any, int] = dict(
        (
            await session.execute(
                text("SELECT id, posted FROM ledger_accounts WHERE id = ANY(:ids)"),
                {"ids": list(mapping.values())},
            )
        ).all()
    )
    wrong = [
        r["id"]
        for r in rows
        if r["id"] in mapping
        and posted.get(mapping[r["id"]]) != minor_units(r["balance"], r["currency"].upper())
    ]
    return _check(
        "balances",
        not wrong,
        f"{len(wrong)} of {len(mapping)} accounts differ"
        + (f": legacy ids {wrong[:10]}" if wrong else ""),
    )


async def _history_counts(
    session: AsyncSession, legacy: LegacyDatabase, accounts: dict[int, Any]
) -> CheckResult:
    legacy_counts = {
        int(r["account_id"]): int(r["n"])
        for r in await legacy.fetch(
            "SELECT account_id, count(*) AS n FROM transactions GROUP BY account_id"
        )
    }
    ours: Counter[Any] = Counter(
        dict(
            (
                await session.execute(
                    text(
                        "SELECT account_id, count(*) FROM transactions "
                        "WHERE kind = 'migrated' GROUP BY account_id"
                    )
                )
            ).all()
        )
    )
    wrong = [
        legacy_id
        for legacy_id, new_id in accounts.items()
        if legacy_counts.get(legacy_id, 0) != ours.get(new_id, 0)
    ]
    return _check(
        "history_per_account",
        not wrong,
        f"{len(wrong)} of {len(accounts)} accounts have a different number of transactions",
    )


async def _shadow(session: AsyncSession, domain: MigrationDomain, threshold: float) -> CheckResult:
    exists = await session.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": SHADOW_TABLE})
    if not exists:
        return CheckResult(
            name="shadow_diff_rate", outcome=SKIPPED, detail="no shadow data (no gateway records)"
        )
    row = (
        await session.execute(
            text(
                "SELECT coalesce(sum(compared), 0) AS n, "  # noqa: S608 - a constant table name
                f"coalesce(sum(differed), 0) AS bad FROM {SHADOW_TABLE} "
                "WHERE route_prefix = ANY(:prefixes)"
            ),
            {"prefixes": list(domain.prefixes)},
        )
    ).one()
    if not row.n:
        return CheckResult(
            name="shadow_diff_rate", outcome=SKIPPED, detail="no shadow data for these routes"
        )
    rate = row.bad / row.n
    return _check(
        "shadow_diff_rate", rate <= threshold, f"{rate:.4f} of {row.n} (threshold {threshold})"
    )


async def verify_domain(
    sessions: SessionFactory, legacy: LegacyDatabase, inp: VerifyInput
) -> VerificationReport:
    """Run every check of a domain; the report is ok when none failed."""
    checks: list[CheckResult] = []
    async with sessions() as session:
        mapping = await _mapping(session, inp.domain)
        checks.append(await _count_check(session, legacy, inp.domain, len(mapping)))
        if inp.domain == MigrationDomain.USERS:
            checks.append(await _user_diffs(session, legacy, mapping, inp.sample_size))
        elif inp.domain == MigrationDomain.ACCOUNTS:
            checks.append(await _balances(session, legacy, mapping))
        else:
            accounts = await _mapping(session, MigrationDomain.ACCOUNTS)
            checks.append(await _history_counts(session, legacy, accounts))
        checks.append(await _shadow(session, inp.domain, inp.shadow_diff_threshold))
    if inp.domain != MigrationDomain.USERS:
        ledger = await verify_ledger(sessions)
        checks.append(_check("ledger_invariants", ledger.ok, "vortex ledger verify"))
    return VerificationReport(
        domain=inp.domain, ok=all(c.outcome != FAILED for c in checks), checks=checks
    )
