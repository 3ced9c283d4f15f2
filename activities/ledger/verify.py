"""Ledger invariant check (`vortex ledger verify`): proves from the rows, per currency, that

- every journal entry's postings sum to zero, so all postings of the currency sum to zero;
- every account's stored `posted` equals the sum of its postings, and its stored `held` the sum of
  its pending holds;
- no customer account has a negative available balance (posted - held);
- every posting is in its account's currency and every entry has postings.

It reads one consistent snapshot (REPEATABLE READ, read only), so it can run beside live traffic.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import SessionFactory
from models.base import utcnow
from models.money import format_amount, is_currency_code

MAX_LISTED = 100  # problems listed per kind and currency; counts stay exact


class BalanceMismatch(BaseModel):
    """An account whose stored balance differs from what its rows add up to."""

    account_id: uuid.UUID
    stored: int
    computed: int


class CurrencyReport(BaseModel):
    """The invariants of one currency."""

    currency: str
    accounts: int = 0
    entries: int = 0
    postings: int = 0
    postings_sum: int = 0
    customer_posted: int = 0
    customer_held: int = 0
    unbalanced_entries: list[uuid.UUID] = Field(default_factory=list)
    posted_mismatches: list[BalanceMismatch] = Field(default_factory=list)
    held_mismatches: list[BalanceMismatch] = Field(default_factory=list)
    negative_available: list[uuid.UUID] = Field(default_factory=list)
    foreign_currency_postings: int = 0

    @property
    def ok(self) -> bool:
        """True when every invariant holds for this currency."""
        return (
            self.postings_sum == 0
            and not self.unbalanced_entries
            and not self.posted_mismatches
            and not self.held_mismatches
            and not self.negative_available
            and self.foreign_currency_postings == 0
        )


class LedgerReport(BaseModel):
    """The invariant check of the whole ledger."""

    checked_at: datetime
    currencies: list[CurrencyReport]
    entries_without_postings: int = 0
    rows_with_broken_references: int = 0

    @property
    def ok(self) -> bool:
        """True when every currency passes, no entry lacks postings and every reference holds."""
        return (
            self.entries_without_postings == 0
            and self.rows_with_broken_references == 0
            and all(c.ok for c in self.currencies)
        )


_ACCOUNTS = text(
    "SELECT currency, count(*) AS accounts, "
    "coalesce(sum(posted) FILTER (WHERE kind = 'customer'), 0) AS customer_posted, "
    "coalesce(sum(held) FILTER (WHERE kind = 'customer'), 0) AS customer_held "
    "FROM ledger_accounts GROUP BY currency"
)
_POSTINGS = text(
    "SELECT currency, count(*) AS postings, count(DISTINCT entry_id) AS entries, "
    "sum(amount) AS total FROM postings GROUP BY currency"
)
_UNBALANCED = text(
    "SELECT currency, entry_id FROM postings GROUP BY entry_id, currency "
    "HAVING sum(amount) <> 0 ORDER BY currency, entry_id"
)
_POSTED_MISMATCH = text(
    "SELECT a.currency, a.id, a.posted AS stored, coalesce(p.total, 0) AS computed "
    "FROM ledger_accounts a LEFT JOIN "
    "(SELECT account_id, sum(amount) AS total FROM postings GROUP BY account_id) p "
    "ON p.account_id = a.id WHERE a.posted <> coalesce(p.total, 0) ORDER BY a.currency, a.id"
)
_HELD_MISMATCH = text(
    "SELECT a.currency, a.id, a.held AS stored, coalesce(h.total, 0) AS computed "
    "FROM ledger_accounts a LEFT JOIN "
    "(SELECT account_id, sum(amount) AS total FROM holds WHERE status = 'pending' "
    "GROUP BY account_id) h ON h.account_id = a.id "
    "WHERE a.held <> coalesce(h.total, 0) ORDER BY a.currency, a.id"
)
_NEGATIVE = text(
    "SELECT currency, id FROM ledger_accounts "
    "WHERE kind = 'customer' AND posted - held < 0 ORDER BY currency, id"
)
_FOREIGN = text(
    "SELECT a.currency, count(*) AS n FROM postings p JOIN ledger_accounts a "
    "ON a.id = p.account_id WHERE p.currency <> a.currency GROUP BY a.currency"
)
_EMPTY_ENTRIES = text(
    "SELECT count(*) FROM journal_entries e "
    "WHERE NOT EXISTS (SELECT 1 FROM postings p WHERE p.entry_id = e.id)"
)

# The references that triggers check per statement (decision 90), checked again over the whole
# ledger: postings to an entry and an account, transactions to their account's owner and entry.
_BROKEN_REFERENCES = text(
    "SELECT (SELECT count(*) FROM postings p WHERE NOT EXISTS "
    "(SELECT 1 FROM journal_entries e WHERE e.id = p.entry_id) OR NOT EXISTS "
    "(SELECT 1 FROM ledger_accounts a WHERE a.id = p.account_id)) + "
    "(SELECT count(*) FROM transactions t WHERE NOT EXISTS "
    "(SELECT 1 FROM ledger_accounts a WHERE a.id = t.account_id AND a.owner_user_id = t.user_id) "
    "OR (t.journal_entry_id IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM journal_entries e WHERE e.id = t.journal_entry_id)))"
)


async def check_ledger(session: AsyncSession) -> LedgerReport:
    """Run every invariant query in the session's current transaction (its snapshot)."""
    reports: dict[str, CurrencyReport] = {}

    def report(currency: str) -> CurrencyReport:
        return reports.setdefault(currency, CurrencyReport(currency=currency))

    for row in (await session.execute(_ACCOUNTS)).all():
        r = report(row.currency)
        r.accounts, r.customer_posted, r.customer_held = (
            row.accounts,
            int(row.customer_posted),
            int(row.customer_held),
        )
    for row in (await session.execute(_POSTINGS)).all():
        r = report(row.currency)
        r.postings, r.entries, r.postings_sum = row.postings, row.entries, int(row.total)
    for row in (await session.execute(_UNBALANCED)).all():
        r = report(row.currency)
        if len(r.unbalanced_entries) < MAX_LISTED:
            r.unbalanced_entries.append(row.entry_id)
    for query, attr in (
        (_POSTED_MISMATCH, "posted_mismatches"),
        (_HELD_MISMATCH, "held_mismatches"),
    ):
        for row in (await session.execute(query)).all():
            found: list[BalanceMismatch] = getattr(report(row.currency), attr)
            if len(found) < MAX_LISTED:
                found.append(
                    BalanceMismatch(
                        account_id=row.id, stored=row.stored, computed=int(row.computed)
                    )
                )
    for row in (await session.execute(_NEGATIVE)).all():
        r = report(row.currency)
        if len(r.negative_available) < MAX_LISTED:
            r.negative_available.append(row.id)
    for row in (await session.execute(_FOREIGN)).all():
        report(row.currency).foreign_currency_postings = row.n
    empty = (await session.execute(_EMPTY_ENTRIES)).scalar_one()
    broken = (await session.execute(_BROKEN_REFERENCES)).scalar_one()
    return LedgerReport(
        checked_at=utcnow(),
        currencies=[reports[c] for c in sorted(reports)],
        entries_without_postings=empty,
        rows_with_broken_references=broken,
    )


async def verify_ledger(sessions: SessionFactory) -> LedgerReport:
    """Check the invariants on one REPEATABLE READ, read-only snapshot."""
    async with sessions() as session:
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
        try:
            return await check_ledger(session)
        finally:
            await session.rollback()


def _money(minor: int, currency: str) -> str:
    return format_amount(minor, currency) if is_currency_code(currency) else str(minor)


def format_report(report: LedgerReport) -> str:
    """A human-readable table of the report, problems listed under it."""
    lines = [
        f"ledger verify at {report.checked_at.isoformat()}: {'OK' if report.ok else 'FAILED'}",
        f"{'currency':<8} {'accounts':>8} {'entries':>9} {'postings':>9} "
        f"{'sum':>6} {'customer posted':>20} {'customer held':>16}  status",
    ]
    for c in report.currencies:
        lines.append(
            f"{c.currency:<8} {c.accounts:>8} {c.entries:>9} {c.postings:>9} "
            f"{c.postings_sum:>6} {_money(c.customer_posted, c.currency):>20} "
            f"{_money(c.customer_held, c.currency):>16}  {'ok' if c.ok else 'FAILED'}"
        )
    for c in report.currencies:
        for entry in c.unbalanced_entries:
            lines.append(f"  {c.currency}: entry {entry} does not sum to zero")
        for m in c.posted_mismatches:
            lines.append(
                f"  {c.currency}: account {m.account_id} posted {m.stored} != postings {m.computed}"
            )
        for m in c.held_mismatches:
            lines.append(
                f"  {c.currency}: account {m.account_id} held {m.stored} != pending holds "
                f"{m.computed}"
            )
        for account in c.negative_available:
            lines.append(f"  {c.currency}: customer account {account} has negative available")
        if c.foreign_currency_postings:
            lines.append(
                f"  {c.currency}: {c.foreign_currency_postings} postings in another currency"
            )
    if report.entries_without_postings:
        lines.append(f"  {report.entries_without_postings} journal entries have no postings")
    if report.rows_with_broken_references:
        lines.append(
            f"  {report.rows_with_broken_references} postings or transactions refer to an entry, "
            "account or owner that does not exist"
        )
    if not report.currencies:
        lines.append("  (empty ledger)")
    return "\n".join(lines)
