"""SQLModel tables, API schemas and workflow payloads. Importing this registers every table."""

from models.audit import AuditEvent
from models.identity.tables import (
    EmailVerification,
    RecoveryCode,
    RefreshToken,
    Registration,
    RegistrationStatus,
    User,
    UserStatus,
)
from models.ledger.tables import (
    Hold,
    JournalEntry,
    LedgerAccount,
    OutboxEvent,
    Posting,
    Transaction,
)
from models.linking.tables import LinkedAccount
from models.payments.tables import Payment, PaymentMethod, WebhookEvent

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
