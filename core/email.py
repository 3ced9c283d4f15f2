"""Email delivery backends: console (dev), memory (tests, inspection) and SMTP (production)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from core.breakers import breaker
from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class OutgoingEmail:
    """An email: a plain-text body and, optionally, an HTML alternative."""

    to: str
    subject: str
    body: str
    html: str | None = None


class EmailBackend(Protocol):
    """Anything that can deliver an email."""

    async def send(self, email: OutgoingEmail) -> None:
        """Deliver one email or raise."""


class ConsoleEmailBackend:
    """Writes emails to the log: the development default."""

    async def send(self, email: OutgoingEmail) -> None:
        """Log the email in full."""
        log.info("email (console backend)", to=email.to, subject=email.subject, body=email.body)


class MemoryEmailBackend:
    """Keeps the last emails in process memory (like Django's locmem backend)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.outbox: deque[OutgoingEmail] = deque(maxlen=capacity)

    async def send(self, email: OutgoingEmail) -> None:
        """Append the email to the outbox."""
        self.outbox.append(email)

    def latest_to(self, address: str) -> OutgoingEmail | None:
        """The most recent email sent to an address."""
        return next((m for m in reversed(self.outbox) if m.to == address), None)


class SmtpEmailBackend:
    """Delivers through an SMTP server, under the `smtp` circuit breaker."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, email: OutgoingEmail) -> None:
        """Send one message over SMTP (STARTTLS and auth when configured)."""
        s = self._settings
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = s.email_from, email.to, email.subject
        message.set_content(email.body)
        if email.html is not None:
            message.add_alternative(email.html, subtype="html")
        async with breaker("smtp", ignore=_smtp_answered):
            await self._send(message)

    async def _send(self, message: EmailMessage) -> None:
        s = self._settings
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls,
            timeout=30,
        )


def _smtp_answered(exc: BaseException) -> bool:
    """A permanent refusal (5xx: bad address, message refused) is the server answering, not an
    outage: it must not open the SMTP breaker."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return True
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500


def create_email_backend(settings: Settings) -> EmailBackend:
    """Build the configured backend."""
    if settings.email_backend == "smtp":
        return SmtpEmailBackend(settings)
    if settings.email_backend == "memory":
        return MemoryEmailBackend()
    return ConsoleEmailBackend()
