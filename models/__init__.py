"""SQLModel tables, API schemas and workflow payloads. Importing this registers every table."""

from models.audit import AuditEvent
from models.registration import EmailVerification, Registration, RegistrationStatus
from models.user import RecoveryCode, RefreshToken, User, UserStatus

__all__ = [
    "AuditEvent",
    "EmailVerification",
    "RecoveryCode",
    "RefreshToken",
    "Registration",
    "RegistrationStatus",
    "User",
    "UserStatus",
]
from models.ledger import (
    Hold,
    JournalEntry,
    LedgerAccount,
    OutboxEvent,
    Posting,
    Transaction,
)

__all__ += ["Hold", "JournalEntry", "LedgerAccount", "OutboxEvent", "Posting", "Transaction"]
from models.payment import LinkedAccount, Payment, PaymentMethod, WebhookEvent

__all__ += ["LinkedAccount", "Payment", "PaymentMethod", "WebhookEvent"]
