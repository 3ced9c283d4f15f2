"""Custom search attributes: ids, statuses and amounts only (they are plaintext)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

USER_ID = SearchAttributeKey.for_keyword("VortexUserId")
STATUS = SearchAttributeKey.for_keyword("VortexStatus")
AMOUNT = SearchAttributeKey.for_int("VortexAmount")
CURRENCY = SearchAttributeKey.for_keyword("VortexCurrency")
MIGRATION_DOMAIN = SearchAttributeKey.for_keyword("VortexMigrationDomain")
MIGRATION_ROWS = SearchAttributeKey.for_int("VortexMigrationRows")

ALL: tuple[SearchAttributeKey[str] | SearchAttributeKey[int], ...] = (
    USER_ID,
    STATUS,
    AMOUNT,
    CURRENCY,
    MIGRATION_DOMAIN,
    MIGRATION_ROWS,
)
