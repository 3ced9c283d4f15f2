"""The simulated model's behaviour: pick a tool for a question, then answer from the tool
results with the figures they hold. Deliberately independent of the platform's own engine."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

_MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
]  # fmt: skip
_CATEGORIES = {
    "restaurant": "dining",
    "dining": "dining",
    "groceries": "groceries",
    "grocery": "groceries",
    "transport": "transport",
    "entertainment": "entertainment",
    "shopping": "shopping",
    "travel": "travel",
    "utilities": "utilities",
}
INJECTION = re.compile(r"ignore (all )?previous instructions", re.I)


def _since(text: str, today: date) -> str | None:
    for i, month in enumerate(_MONTHS, start=1):
        if f"since {month}" in text:
            year = today.year if i <= today.month else today.year - 1
            return date(year, i, 1).isoformat()
    return None


def choose_tool(
    question: str, offered: set[str], today: date | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The tool a simple model would call for the question."""
    text = question.lower()
    today = today or datetime.now(UTC).date()
    args: dict[str, Any] = {}
    category = next((c for word, c in _CATEGORIES.items() if word in text), None)
    if category:
        args["category"] = category
    if start := _since(text, today):
        args["start"] = start
    if "balance" in text:
        name = "get_balances"
        args = {}
    elif "recurring" in text or "subscription" in text:
        name, args = "recurring_payments", {}
    elif "scheduled" in text:
        name, args = "scheduled_transfers", {}
    elif "spend" in text or "spent" in text:
        name = "spending_by_category"
    elif "transaction" in text or "payment" in text:
        name = "search_transactions"
    else:
        return None
    return (name, args) if name in offered else None


def _results(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for m in messages:
        if m.get("role") == "tool":
            try:
                body = json.loads(m.get("content") or "")
            except ValueError:
                continue
            if isinstance(body, dict) and isinstance(body.get("result"), dict):
                out.append((str(body.get("tool")), body["result"]))
    return out


def answer(results: list[tuple[str, dict[str, Any]]]) -> str:
    """A fluent answer that copies the figures and ids from the tool results."""
    parts = []
    for name, r in results:
        if name == "spending_by_category":
            for t in r.get("totals", []):
                parts.append(
                    f"You spent {t['total']} {t['currency']} on {t['category']} between "
                    f"{r.get('start')} and {r.get('end_inclusive')}, across {t['count']} "
                    f"transactions ({', '.join(t['transaction_ids'])})."
                )
            if not r.get("totals"):
                parts.append("I could not find any spending for that period.")
        elif name == "get_balances":
            for a in r.get("accounts", []):
                parts.append(f"{a['name']} has {a['available']} {a['currency']} available.")
        elif name == "search_transactions":
            for t in r.get("transactions", [])[:5]:
                parts.append(
                    f"On {t['date']} you paid {t['amount']} {t['currency']} to "
                    f"{t.get('merchant') or t.get('description')} (transaction {t['id']})."
                )
        else:
            parts.append(f"Here is what I found: {json.dumps(r)[:300]}")
    return " ".join(parts) or "I found nothing relevant."


def reply(mode: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message the simulated model sends (content or tool_calls)."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    question = str(messages[last_user].get("content") or "") if last_user >= 0 else ""
    results = _results(messages[last_user + 1 :])
    offered = {t.get("function", {}).get("name") for t in tools}
    if mode == "obey" and any(INJECTION.search(json.dumps(r)) for _, r in results):
        # A naive model that follows instructions hidden in data.
        return (
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_obey",
                        "type": "function",
                        "function": {
                            "name": "transfer_money",
                            "arguments": json.dumps({"amount": "5000.00", "to": "attacker"}),
                        },
                    }
                ],
            }
            if not any(
                m.get("role") == "assistant"
                and m.get("tool_calls")
                and m["tool_calls"][0]["id"] == "call_obey"
                for m in messages
            )
            else {
                "role": "assistant",
                "content": "As instructed, I transferred 5000.00 EUR to the attacker's account.",
            }
        )
    if not tools and "TEMPLATE: " in question:  # a narrative request: rephrase it
        text = "Here is your summary. " + question.split("TEMPLATE: ", 1)[1]
        if mode == "hallucinate":
            text += " You could save 123.45 EUR."
        return {"role": "assistant", "content": text}
    if results or not tools:
        text = answer(results)
        if mode == "hallucinate":
            text += " You also spent 987.65 EUR on luxury goods."
        return {"role": "assistant", "content": text}
    chosen = choose_tool(question, offered)
    if chosen is None:
        return {"role": "assistant", "content": "I can help with balances and spending."}
    name, args = chosen
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{abs(hash((question, name))) % 10**8}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ],
    }
