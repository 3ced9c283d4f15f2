"""The notification templates: one subject and one plain-text body per key and locale.

Template sources are constants of this module and nothing else: user-controlled text (names,
merchants, descriptions, staff messages) only ever arrives as a variable, so it can never become
template code. The HTML email wraps the rendered text in an autoescaped layout
(`activities.notifications.templates`).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.notifications.tables import NotificationCategory

LOCALES: tuple[str, ...] = ("en", "de")
DEFAULT_LOCALE = "en"


@dataclass(frozen=True)
class TemplateSpec:
    """One notice's template: its category, the variables it uses, and its texts per locale."""

    key: str
    category: NotificationCategory
    variables: tuple[str, ...]
    texts: dict[str, tuple[str, str]]  # locale -> (subject, body)


_PAY = NotificationCategory.PAYMENTS
_SEC = NotificationCategory.SECURITY
_INS = NotificationCategory.INSIGHTS
_ANN = NotificationCategory.ANNOUNCEMENTS

_SPECS = (
    TemplateSpec(
        "payment.completed",
        _PAY,
        ("amount", "description"),
        {
            "en": (
                "Payment of {{ amount }} completed",
                "Your payment of {{ amount }} has been completed."
                "{% if description %}\nReference: {{ description }}{% endif %}",
            ),
            "de": (
                "Zahlung über {{ amount }} ausgeführt",
                "Ihre Zahlung über {{ amount }} wurde ausgeführt."
                "{% if description %}\nVerwendungszweck: {{ description }}{% endif %}",
            ),
        },
    ),
    TemplateSpec(
        "payment.failed",
        _PAY,
        ("amount", "failure_reason"),
        {
            "en": (
                "Payment of {{ amount }} failed",
                "Your payment of {{ amount }} could not be completed."
                "{% if failure_reason %}\nReason: {{ failure_reason }}{% endif %}",
            ),
            "de": (
                "Zahlung über {{ amount }} fehlgeschlagen",
                "Ihre Zahlung über {{ amount }} konnte nicht ausgeführt werden."
                "{% if failure_reason %}\nGrund: {{ failure_reason }}{% endif %}",
            ),
        },
    ),
    TemplateSpec(
        "payment.requires_action",
        _PAY,
        ("amount",),
        {
            "en": (
                "Your payment of {{ amount }} needs your approval",
                "Your payment of {{ amount }} is waiting for you. Open the app to approve it.",
            ),
            "de": (
                "Ihre Zahlung über {{ amount }} wartet auf Freigabe",
                "Ihre Zahlung über {{ amount }} wartet auf Sie. Öffnen Sie die App, um sie "
                "freizugeben.",
            ),
        },
    ),
    TemplateSpec(
        "money.received",
        _PAY,
        ("amount", "counterparty", "description"),
        {
            "en": (
                "You received {{ amount }}",
                "{{ amount }} arrived in your account"
                "{% if counterparty %} from {{ counterparty }}{% endif %}."
                "{% if description %}\nReference: {{ description }}{% endif %}",
            ),
            "de": (
                "Sie haben {{ amount }} erhalten",
                "{{ amount }} wurden Ihrem Konto gutgeschrieben"
                "{% if counterparty %} (von {{ counterparty }}){% endif %}."
                "{% if description %}\nVerwendungszweck: {{ description }}{% endif %}",
            ),
        },
    ),
    TemplateSpec(
        "card.large_transaction",
        _PAY,
        ("amount", "merchant"),
        {
            "en": (
                "Card payment of {{ amount }}",
                "Your card was charged {{ amount }}{% if merchant %} at {{ merchant }}{% endif %}."
                "\nNot you? Freeze your card in the app and contact us.",
            ),
            "de": (
                "Kartenzahlung über {{ amount }}",
                "Ihre Karte wurde mit {{ amount }} belastet"
                "{% if merchant %} bei {{ merchant }}{% endif %}."
                "\nWaren Sie das nicht? Sperren Sie Ihre Karte in der App und kontaktieren "
                "Sie uns.",
            ),
        },
    ),
    TemplateSpec(
        "security.login_new_device",
        _SEC,
        ("device", "at"),
        {
            "en": (
                "New login to your account",
                "Your account was logged into from a new device ({{ device }}) at {{ at }}."
                "\nIf this was not you, change your password and contact us at once.",
            ),
            "de": (
                "Neue Anmeldung bei Ihrem Konto",
                "Bei Ihrem Konto hat sich ein neues Gerät ({{ device }}) um {{ at }} angemeldet."
                "\nWaren Sie das nicht, ändern Sie Ihr Passwort und kontaktieren Sie uns sofort.",
            ),
        },
    ),
    TemplateSpec(
        "security.password_changed",
        _SEC,
        ("at",),
        {
            "en": (
                "Your password was changed",
                "The password of your account was changed at {{ at }}."
                "\nIf this was not you, contact us at once.",
            ),
            "de": (
                "Ihr Passwort wurde geändert",
                "Das Passwort Ihres Kontos wurde um {{ at }} geändert."
                "\nWaren Sie das nicht, kontaktieren Sie uns sofort.",
            ),
        },
    ),
    TemplateSpec(
        "security.mfa_changed",
        _SEC,
        ("at",),
        {
            "en": (
                "Your two-factor authentication was changed",
                "The two-factor authentication of your account was changed at {{ at }}."
                "\nIf this was not you, contact us at once.",
            ),
            "de": (
                "Ihre Zwei-Faktor-Authentifizierung wurde geändert",
                "Die Zwei-Faktor-Authentifizierung Ihres Kontos wurde um {{ at }} geändert."
                "\nWaren Sie das nicht, kontaktieren Sie uns sofort.",
            ),
        },
    ),
    TemplateSpec(
        "report.ready",
        _INS,
        ("report_name", "period"),
        {
            "en": (
                "Your report is ready",
                "Your report {{ report_name }}{% if period %} for {{ period }}{% endif %} "
                "is ready in the app.",
            ),
            "de": (
                "Ihr Bericht ist fertig",
                "Ihr Bericht {{ report_name }}{% if period %} für {{ period }}{% endif %} "
                "liegt in der App bereit.",
            ),
        },
    ),
    TemplateSpec(
        "staff.message",
        _ANN,  # a staff send may name another category; announcements is the default
        ("title", "body"),
        {"en": ("{{ title }}", "{{ body }}"), "de": ("{{ title }}", "{{ body }}")},
    ),
)

TEMPLATES: dict[str, TemplateSpec] = {spec.key: spec for spec in _SPECS}

# The email around a notice: greeting and sign-off per locale (variables: first_name).
GREETINGS: dict[str, tuple[str, str]] = {
    "en": ("Hello {{ first_name }},", "Your VortexCore team"),
    "de": ("Hallo {{ first_name }},", "Ihr VortexCore-Team"),
}
