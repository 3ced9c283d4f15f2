"""Rendering notices with Jinja2's sandbox: plain text for the app and the email's text part,
an autoescaped HTML layout for the email's HTML part.

Every variable is a plain string (`render` refuses anything else), the template sources are the
constants in `catalog`, and undefined variables are errors. So a merchant called
`{{ 7*7 }}` stays those seven characters and `<script>` arrives in HTML as `&lt;script&gt;`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import DictLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from activities.notifications.catalog import DEFAULT_LOCALE, GREETINGS, LOCALES, TEMPLATES
from models.money import format_amount

_HTML_LAYOUT = """<!doctype html>
<html lang="{{ locale }}"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif">
<p>{{ greeting }}</p>
<h1 style="font-size: 18px">{{ subject }}</h1>
{% for paragraph in paragraphs %}<p>{{ paragraph }}</p>
{% endfor %}<p>{{ signoff }}</p>
</body></html>
"""
_TEXT_LAYOUT = "{{ greeting }}\n\n{{ body }}\n\n{{ signoff }}\n"


def _sources() -> dict[str, str]:
    sources = {"layout.html": _HTML_LAYOUT, "layout.txt": _TEXT_LAYOUT}
    for spec in TEMPLATES.values():
        for locale, (subject, body) in spec.texts.items():
            sources[f"{locale}/{spec.key}.subject"] = subject
            sources[f"{locale}/{spec.key}.txt"] = body
    for locale, (greeting, signoff) in GREETINGS.items():
        sources[f"{locale}/greeting"], sources[f"{locale}/signoff"] = greeting, signoff
    return sources


_LOADER = DictLoader(_sources())
# Text: nothing is escaped (it is shown as text, never as markup). HTML: everything is.
_TEXT = ImmutableSandboxedEnvironment(loader=_LOADER, autoescape=False, undefined=StrictUndefined)
_HTML = ImmutableSandboxedEnvironment(loader=_LOADER, autoescape=True, undefined=StrictUndefined)


@dataclass(frozen=True)
class RenderedNotice:
    """A notice rendered for one locale: the in-app title and body are `subject` and `text`."""

    subject: str
    text: str


@dataclass(frozen=True)
class RenderedEmail:
    """The email of a notice: subject, plain-text part and HTML part."""

    subject: str
    text: str
    html: str


def pick_locale(locale: str | None) -> str:
    """A locale we have templates for (the default otherwise)."""
    return locale if locale in LOCALES else DEFAULT_LOCALE


def _strings(context: Mapping[str, object]) -> dict[str, str]:
    """Only strings reach a template: no object whose attributes a template could explore."""
    out: dict[str, str] = {}
    for name, value in context.items():
        if not isinstance(value, str):
            raise TypeError(f"template variable {name!r} must be a string")
        out[name] = value
    return out


def render_notice(key: str, locale: str, context: Mapping[str, object]) -> RenderedNotice:
    """The subject and plain-text body of template `key` in `locale`."""
    spec, loc = TEMPLATES[key], pick_locale(locale)
    values = {name: "" for name in spec.variables} | _strings(context)
    subject = _TEXT.get_template(f"{loc}/{key}.subject").render(values)
    text = _TEXT.get_template(f"{loc}/{key}.txt").render(values)
    return RenderedNotice(subject=" ".join(subject.split())[:300], text=text.strip()[:2000])


def render_email(
    key: str, locale: str, context: Mapping[str, object], first_name: str
) -> RenderedEmail:
    """The email of a notice: the text rendered once, then laid out as text and as HTML."""
    loc = pick_locale(locale)
    notice = render_notice(key, loc, context)
    names = {"first_name": _strings({"first_name": first_name})["first_name"]}
    greeting = _TEXT.get_template(f"{loc}/greeting").render(names)
    signoff = _TEXT.get_template(f"{loc}/signoff").render()
    text = _TEXT.get_template("layout.txt").render(
        greeting=greeting, body=notice.text, signoff=signoff
    )
    html = _HTML.get_template("layout.html").render(
        locale=loc,
        subject=notice.subject,
        greeting=greeting,
        paragraphs=notice.text.split("\n"),
        signoff=signoff,
    )
    return RenderedEmail(subject=notice.subject, text=text, html=html)


def format_money(minor: int, currency: str, locale: str) -> str:
    """`1,234.56 EUR` in English, `1.234,56 EUR` in German."""
    plain = format_amount(minor, currency)
    sign, digits = ("-", plain[1:]) if plain.startswith("-") else ("", plain)
    whole, _, fraction = digits.partition(".")
    thousands, decimal = (".", ",") if pick_locale(locale) == "de" else (",", ".")
    grouped = f"{int(whole):,}".replace(",", thousands)
    return f"{sign}{grouped}{decimal + fraction if fraction else ''} {currency}"


def format_time(at: datetime, time_zone: str, locale: str) -> str:
    """A moment in the user's time zone (`2026-12-06 08:30 CET`; German: `06.12.2026 08:30`)."""
    local = at.astimezone(ZoneInfo(time_zone))
    if pick_locale(locale) == "de":
        return local.strftime("%d.%m.%Y %H:%M %Z")
    return local.strftime("%Y-%m-%d %H:%M %Z")
