"""A stored report as the API shows it: JSON figures with Money, and an HTML page with inline
SVG charts (Jinja2, autoescaped: every value from the data is escaped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from activities.analytics.figures import TRANSFER
from activities.reports.narrative import NAMES
from models.analytics.schemas import CategoryAmount, Flows
from models.money import Money, format_amount
from models.reports.schemas import MonthlyReportPublic, ReportCurrency


def html_url(report_id: object) -> str:
    """Where the HTML view of a report is."""
    return f"/api/ai/reports/monthly/{report_id}/html"


def _currency(c: dict[str, Any]) -> ReportCurrency:
    cur = c["currency"]
    spending = c["spending"]
    return ReportCurrency(
        currency=cur,
        flows=Flows(
            money_in=Money.of(c["money_in"], cur),
            money_out=Money.of(c["money_out"], cur),
            income=Money.of(c["income"], cur),
            spending=Money.of(spending, cur),
            transactions=c["transactions"],
        ),
        savings_rate=c["savings_rate"],
        previous_spending=Money.of(c["previous_spending"], cur),
        change_ratio=c["change_ratio"],
        categories=[
            CategoryAmount(
                category=x["category"],
                spending=Money.of(x["spending"], cur),
                income=Money.of(x["income"], cur),
                count=x["count"],
                share_of_spending=(
                    round(x["spending"] / spending, 4)
                    if spending and x["category"] != TRANSFER
                    else None
                ),
            )
            for x in c["categories"]
        ],
        daily_spending=[Money.of(v, cur) for v in c["daily_spending"]],
    )


def report_public(row: Any) -> MonthlyReportPublic:
    """The JSON view of a stored report row."""
    return MonthlyReportPublic(
        id=row.id,
        month=f"{row.month:%Y-%m}",
        ready_at=row.ready_at,
        narrative=row.narrative,
        narrative_source=row.narrative_source,
        currencies=[_currency(c) for c in row.figures.get("currencies", [])],
        html_url=html_url(row.id),
    )


_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
)
# The page template lives beside this module (monthly_report.html): inline CSS and SVG only.
_PAGE = _ENV.get_template("monthly_report.html")


def _money(minor: int, cur: str) -> str:
    return f"{format_amount(minor, cur)} {cur}"


def _chart_data(c: dict[str, Any]) -> dict[str, Any]:
    cur = c["currency"]
    spent = [x for x in c["categories"] if x["category"] != TRANSFER and x["spending"] > 0][:8]
    top = max((x["spending"] for x in spent), default=0) or 1
    bars = [
        {
            "y": 6 + i * 30,
            "label": NAMES.get(x["category"], x["category"]).capitalize(),
            "width": round(480 * x["spending"] / top),
            "amount": _money(x["spending"], cur),
        }
        for i, x in enumerate(spent)
    ]
    daily = c["daily_spending"]
    peak = max(daily, default=0) or 1
    step = 760 / max(len(daily), 1)
    days = [
        {
            "x": round(30 + i * step + 1, 1),
            "w": round(step - 2, 1),
            "h": round(130 * v / peak, 1),
            "title": f"Day {i + 1}: {_money(v, cur)}",
            "label": str(i + 1) if i == 0 or (i + 1) % 5 == 0 else "",
        }
        for i, v in enumerate(daily)
    ]
    change = c["change_ratio"]
    rate = c["savings_rate"]
    return {
        "currency": cur,
        "money_in": _money(c["money_in"], cur),
        "spending": _money(c["spending"], cur),
        "change": "n/a" if change is None else f"{change * 100:+.0f}%",
        "rate": "n/a" if rate is None else f"{rate * 100:.0f}%",
        "bars": bars,
        "bars_height": max(40, 12 + 30 * len(bars)),
        "days": days,
        "day_max": _money(max(daily, default=0), cur),
    }


def report_html(row: Any) -> str:
    """The HTML page of a stored report (self-contained: inline CSS and SVG, no scripts)."""
    return _PAGE.render(
        month_name=f"{row.month:%B %Y}",
        ready=f"{row.ready_at:%Y-%m-%d %H:%M} UTC",
        paragraphs=[p for p in row.narrative.split("\n\n") if p.strip()],
        source=row.narrative_source,
        currencies=[_chart_data(c) for c in row.figures.get("currencies", [])],
    )
