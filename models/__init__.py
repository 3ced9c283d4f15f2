"""SQLModel tables, API schemas and workflow payloads. Importing this registers every table."""

from models.ai.tables import (
    CategorizerModel,
    Conversation,
    ConversationMessage,
    Insight,
    LlmUsage,
    MerchantMemory,
    TransferProposal,
)
from models.analytics.tables import AnalyticsDaily, AnalyticsEvent
from models.audit import AuditEvent
from models.gateway.tables import GatewayRoute, ShadowCount, ShadowDiff
from models.identity.tables import (
    EmailVerification,
    KnownDevice,
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
from models.migration.tables import (
    MigrationAppliedEvent,
    MigrationIdentity,
    MigrationQuarantine,
    MigrationRun,
)
from models.notifications.tables import (
    Notification,
    NotificationDelivery,
    NotificationPreference,
    NotificationSend,
)
from models.payments.tables import Payment, PaymentMethod, WebhookEvent
from models.reports.tables import MonthlyReport
from models.security.tables import (
    AccountFreeze,
    BreakGlassGrant,
    DataExport,
    Incident,
    IncidentNote,
    LoginSession,
    SecurityReport,
)
from models.staff.tables import StaffRoleGrant

__all__ = [
    "AccountFreeze",
    "AnalyticsDaily",
    "AnalyticsEvent",
    "AuditEvent",
    "BreakGlassGrant",
    "CategorizerModel",
    "Conversation",
    "ConversationMessage",
    "DataExport",
    "EmailVerification",
    "GatewayRoute",
    "Hold",
    "Incident",
    "IncidentNote",
    "Insight",
    "JournalEntry",
    "KnownDevice",
    "LedgerAccount",
    "LinkedAccount",
    "LlmUsage",
    "LoginSession",
    "MerchantMemory",
    "MigrationAppliedEvent",
    "MigrationIdentity",
    "MigrationQuarantine",
    "MigrationRun",
    "MonthlyReport",
    "Notification",
    "NotificationDelivery",
    "NotificationPreference",
    "NotificationSend",
    "OutboxEvent",
    "Payment",
    "PaymentMethod",
    "Posting",
    "RecoveryCode",
    "RefreshToken",
    "Registration",
    "RegistrationStatus",
    "SecurityReport",
    "ShadowCount",
    "ShadowDiff",
    "StaffRoleGrant",
    "Transaction",
    "TransferProposal",
    "User",
    "UserStatus",
    "WebhookEvent",
]
