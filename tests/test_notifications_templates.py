"""Notice templates (Jinja2 sandbox) and preference arithmetic, without services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Any

import pytest
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from activities.notifications.catalog import LOCALES, TEMPLATES
from activities.notifications.events import notice_content
from activities.notifications.preferences import effective_channels, is_quiet, quiet_window
from activities.notifications.templates import format_money, render_email, render_notice
from models.notifications.tables import (
    NotificationCategory,
    NotificationChannel,
    NotificationPreference,
)

HOSTILE = '<script>alert("x")</script>{{ 7*7 }}{% print 6*7 %}'


def test_a_hostile_merchant_name_is_inert_in_the_html_email() -> None:
    content = notice_content(
        "transaction.created",
        {
            "direction": "debit",
            "kind": "card",
            "amount": 90_000,
            "currency": "EUR",
            "merchant": HOSTILE,
        },
        "en",
        "UTC",
    )
    assert content is not None

    mail = render_email(content.template, "en", content.context, first_name="<b>Ada</b>")

    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in mail.html
    assert "&lt;b&gt;Ada&lt;/b&gt;" in mail.html
    assert "{{ 7*7 }}{% print 6*7 %}" in mail.html  # template code stays text
    assert "49" not in mail.html
    assert "42" not in mail.html
    assert "{{ 7*7 }}" in mail.text
    assert "49" not in mail.text


def test_template_code_in_a_staff_message_is_shown_not_run() -> None:
    probes = "{{ ''.__class__.__mro__ }} {{ config }} {% for x in range(3) %}x{% endfor %}"

    notice = render_notice("staff.message", "de", {"title": probes, "body": probes})

    assert notice.subject == probes
    assert notice.text == probes


def test_only_strings_reach_a_template() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        render_notice("staff.message", "en", {"title": object(), "body": ""})


@pytest.mark.parametrize("locale", LOCALES)
def test_every_template_declares_the_variables_it_uses_in_each_locale(locale: str) -> None:
    env = SandboxedEnvironment()
    for spec in TEMPLATES.values():
        subject, body = spec.texts[locale]
        used = meta.find_undeclared_variables(env.parse(subject + body))
        assert used == set(spec.variables), spec.key
        rendered = render_notice(spec.key, locale, dict.fromkeys(spec.variables, "X"))
        assert rendered.subject
        assert rendered.text


def test_the_email_is_localized() -> None:
    values = {"amount": format_money(123_456, "EUR", "de"), "description": "Miete"}

    de = render_email("payment.completed", "de", values, first_name="Ada")
    en = render_email("payment.completed", "en", {"amount": "1,234.56 EUR"}, first_name="Ada")

    assert de.subject == "Zahlung über 1.234,56 EUR ausgeführt"
    assert de.text.startswith("Hallo Ada,\n\nIhre Zahlung über 1.234,56 EUR wurde ausgeführt.")
    assert "Verwendungszweck: Miete" in de.text
    assert en.subject == "Payment of 1,234.56 EUR completed"
    assert "Reference" not in en.text  # no description, no empty line for it


def test_money_is_formatted_per_locale_and_currency() -> None:
    assert format_money(123_456_789, "EUR", "en") == "1,234,567.89 EUR"
    assert format_money(123_456_789, "EUR", "de") == "1.234.567,89 EUR"
    assert format_money(5_000, "JPY", "de") == "5.000 JPY"


def _pref(**values: Any) -> NotificationPreference:
    return NotificationPreference(user_id=uuid.uuid4(), **values)


def test_quiet_hours_across_midnight_are_found_in_the_users_time_zone() -> None:
    pref = _pref(time_zone="Europe/Berlin", quiet_start=time(22), quiet_end=time(7))
    night = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)  # 03:00 in Berlin
    noon = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)

    at_night, at_noon = quiet_window(pref, night), quiet_window(pref, noon)

    assert at_night is not None
    assert at_noon is not None
    assert is_quiet(at_night, night)
    assert at_night.end == datetime(2026, 12, 6, 6, 0, tzinfo=UTC)  # 07:00 CET
    assert not is_quiet(at_noon, noon)
    assert at_noon.start == datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
    assert quiet_window(_pref(time_zone="UTC"), noon) is None


def test_security_channels_stay_on_whatever_is_stored() -> None:
    pref = _pref(channels={"security": {"email": False}, "payments": {"email": False}})

    matrix = effective_channels(pref)

    assert matrix[NotificationCategory.SECURITY][NotificationChannel.EMAIL] is True
    assert matrix[NotificationCategory.PAYMENTS][NotificationChannel.EMAIL] is False
