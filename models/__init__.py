"""SQLModel tables, API schemas and workflow payloads. Importing this registers every table."""

from models.audit import AuditEvent
from models.ledger import Hold, JournalEntry, LedgerAccount, OutboxEvent, Posting, Transaction
from models.payment import LinkedAccount, Payment, PaymentMethod, WebhookEvent
from models.registration import EmailVerification, Registration, RegistrationStatus
from models.user import RecoveryCode, RefreshToken, User, UserStatus

__all__ = [
    "AuditEvent",
    "EmailVerification",
    "Hold",
    "JournalEntry",
    "LedgerAccount",
    "LinkedAccount",
    "OutboxEvent",
    "Payment",
    "PaymentMethod",
    "Posting",
    "RecoveryCode",
    "RefreshToken",
    "Registration",
    "RegistrationStatus",
    "Transaction",
    "User",
    "UserStatus",
    "WebhookEvent",
]
