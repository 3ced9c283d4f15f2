"""The SMTP backend delivers through a real (in-process) SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from core.email import OutgoingEmail, SmtpEmailBackend, create_email_backend
from core.embedded import free_port
from core.settings import Settings
from tests.conftest import TEST_SECRET


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, _Collector]]:
    """An aiosmtpd server on a free loopback port."""
    collector = _Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, collector
    controller.stop()


async def test_smtp_backend_sends_the_message(smtp_server: tuple[Controller, _Collector]) -> None:
    controller, collector = smtp_server
    settings = Settings(
        _env_file=None,
        secret_key=TEST_SECRET,
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
    )
    backend = create_email_backend(settings)
    assert isinstance(backend, SmtpEmailBackend)

    await backend.send(OutgoingEmail(to="ada@example.com", subject="Hi", body="Code 123456"))

    assert len(collector.messages) == 1
    envelope = collector.messages[0]
    assert envelope.rcpt_tos == ["ada@example.com"]
    parsed = message_from_bytes(envelope.content)
    assert parsed["Subject"] == "Hi"
    assert "123456" in parsed.get_payload()
