"""The report's narrative: the template writer, and the LLM's rephrasing of it.

Every figure the text states comes from the stored figures, formatted here; nothing is made
up. `write_narrative` asks the configured model (`activities/ai/llm.py`, through
`activities/ai/narrative.narrate`) to rephrase the template using only the report's facts; a
local engine, a failing endpoint or a reply that states another figure keeps the template.
"""

from __future__ import annotations

from typing import Any

from activities.ai.llm import LlmClient, LlmReply
from activities.ai.narrative import narrate
from models.money import format_amount

NAMES = {
    "groceries": "groceries",
    "dining": "eating out",
    "transport": "transport",
    "travel": "travel",
    "utilities": "bills and utilities",
    "entertainment": "entertainment",
    "shopping": "shopping",
    "health": "health",
    "cash": "cash",
    "fees": "fees",
    "other": "other spending",
}


def _money(minor: int, currency: str) -> str:
    return f"{format_amount(minor, currency)} {currency}"


def _percent(ratio: float) -> str:
    return f"{abs(ratio) * 100:.0f}%"


def _currency_paragraph(c: dict[str, Any]) -> str:
    cur = c["currency"]
    parts = [
        f"In {cur} you received {_money(c['money_in'], cur)} and spent "
        f"{_money(c['spending'], cur)} outside transfers "
        f"({c['transactions']} transactions)."
    ]
    change = c.get("change_ratio")
    if change is not None and c["previous_spending"]:
        direction = "more" if change > 0 else "less"
        if abs(change) < 0.005:
            parts.append("That is about the same as the month before.")
        else:
            parts.append(
                f"That is {_percent(change)} {direction} than the month before "
                f"({_money(c['previous_spending'], cur)})."
            )
    spent = [x for x in c["categories"] if x["category"] != "transfer" and x["spending"] > 0]
    if spent:
        top = spent[0]
        name = NAMES.get(top["category"], top["category"])
        parts.append(f"Your largest category was {name} at {_money(top['spending'], cur)}.")
    rate = c.get("savings_rate")
    if rate is not None:
        if rate >= 0:
            parts.append(f"You kept {_percent(rate)} of your income.")
        else:
            parts.append(f"You spent {_percent(rate)} more than your income.")
    return " ".join(parts)


def template_narrative(figures: dict[str, Any]) -> str:
    """The narrative from the figures alone, one paragraph per currency."""
    currencies = figures.get("currencies") or []
    if not currencies:
        return f"There were no posted transactions in {figures.get('month', 'this month')}."
    return "\n\n".join(_currency_paragraph(c) for c in currencies)


def facts_of(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures as the model sees them: formatted exactly as the template states them."""
    out: list[dict[str, Any]] = []
    for c in figures.get("currencies") or []:
        cur = c["currency"]
        spent = [x for x in c["categories"] if x["category"] != "transfer" and x["spending"] > 0]
        change, rate = c.get("change_ratio"), c.get("savings_rate")
        out.append(
            {
                "currency": cur,
                "money_in": _money(c["money_in"], cur),
                "spending": _money(c["spending"], cur),
                "transactions": c["transactions"],
                "previous_month_spending": _money(c["previous_spending"], cur),
                "change_vs_previous_month": None if change is None else _percent(change),
                "share_of_income_kept": None if rate is None else _percent(rate),
                "categories": {
                    NAMES.get(x["category"], x["category"]): _money(x["spending"], cur)
                    for x in spent[:5]
                },
            }
        )
    return {"month": figures.get("month"), "currencies": out}


async def write_narrative(
    figures: dict[str, Any], llm: LlmClient | None
) -> tuple[str, str, LlmReply | None, str | None]:
    """The narrative, its source (`llm` or `template`), the model's reply (for the usage
    record) and why the template was kept, if it was."""
    template = template_narrative(figures)
    if llm is None:
        return template, "template", None, None
    story = await narrate(llm, facts=facts_of(figures), template=template)
    source = "llm" if story.source == "llm" else "template"
    return story.text, source, story.reply, story.failure
