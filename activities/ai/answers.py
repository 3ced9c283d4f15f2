"""Templated answers from tool results: the local engine's words, and the fallback whenever a
model's answer states a figure the tools did not return. Every figure and id printed here is
copied from a tool result, so a templated answer never states a made-up figure."""

from __future__ import annotations

from typing import Any

MAX_LINES = 8


def _ids(items: list[dict[str, Any]]) -> str:
    return ", ".join(str(i["id"]) for i in items if "id" in i)


def balances(result: dict[str, Any]) -> str:
    """Balances of the customer's accounts."""
    accounts = result.get("accounts", [])
    if not accounts:
        return "You have no open accounts."
    lines = ["Your balances:"]
    for a in accounts[:MAX_LINES]:
        lines.append(
            f"- {a['name']} ({a['number']}): {a['available']} {a['currency']} available "
            f"({a['posted']} {a['currency']} posted)"
        )
    return "\n".join(lines)


def spending(result: dict[str, Any]) -> str:
    """Spending per category over a period, with the transactions it rests on."""
    totals = result.get("totals", [])
    span = _span(result)
    if not totals:
        return f"I found no spending{span}."
    lines = [f"Your spending{span}:"]
    for t in totals[:MAX_LINES]:
        lines.append(
            f"- {t['category']}: {t['total']} {t['currency']} in {t['count']} transactions"
            + (
                f" (transactions: {', '.join(t['transaction_ids'])})"
                if t["transaction_ids"]
                else ""
            )
        )
    return "\n".join(lines)


def transactions(result: dict[str, Any]) -> str:
    """A short list of matching transactions."""
    items = result.get("transactions", [])
    if not items:
        return f"I found no matching transactions{_span(result)}."
    lines = [f"I found {len(items)} transactions{_span(result)}:"]
    for t in items[:MAX_LINES]:
        who = t.get("merchant") or t.get("counterparty") or t.get("category") or t["kind"]
        lines.append(
            f"- {t['date']}: {t['direction']} {t['amount']} {t['currency']}, {who} "
            f"(transaction {t['id']})"
        )
    return "\n".join(lines)


def recurring(result: dict[str, Any]) -> str:
    """Recurring payments detected in the history."""
    items = result.get("recurring", [])
    if not items:
        return "I found no recurring payments in your history."
    lines = ["Recurring payments I found:"]
    for r in items[:MAX_LINES]:
        lines.append(
            f"- {r['merchant']}: about {r['typical_amount']} {r['currency']} every "
            f"{r['interval_days']} days ({r['occurrences']} payments: "
            f"{', '.join(r['transaction_ids'])})"
        )
    return "\n".join(lines)


def scheduled(result: dict[str, Any]) -> str:
    """Scheduled transfers not yet executed."""
    items = result.get("scheduled", [])
    if not items:
        return "You have no scheduled transfers."
    lines = ["Your scheduled transfers:"]
    for p in items[:MAX_LINES]:
        lines.append(
            f"- {p['amount']} {p['currency']} on {p['execute_at']} (payment {p['payment_id']})"
        )
    return "\n".join(lines)


def error(result: dict[str, Any]) -> str:
    """A tool refused its arguments."""
    return f"I could not look that up: {result.get('error', 'invalid request')}."


def _span(result: dict[str, Any]) -> str:
    start, end = result.get("start"), result.get("end_inclusive")
    if start and end:
        return f" from {start} to {end}"
    if start:
        return f" since {start}"
    return ""


TEMPLATES = {
    "get_balances": balances,
    "spending_by_category": spending,
    "search_transactions": transactions,
    "recurring_payments": recurring,
    "scheduled_transfers": scheduled,
}

HELP = (
    "I can answer questions about your balances, your transactions, your spending by "
    "category and period, your recurring payments and your scheduled transfers, and prepare "
    "a transfer between your accounts for you to confirm (for example: 'how much did I spend "
    "on restaurants since March?' or 'move 200 EUR to savings')."
)


def from_results(results: list[tuple[str, dict[str, Any]]]) -> str:
    """One answer from every tool result of a turn."""
    parts = []
    for name, result in results:
        if "error" in result:
            parts.append(error(result))
        else:
            parts.append(TEMPLATES.get(name, lambda _: "")(result))
    return "\n\n".join(p for p in parts if p) or HELP
