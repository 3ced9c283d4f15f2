"""Migration rejections, by `ApplicationError` type."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

PREVIOUS_DOMAIN_NOT_CUT_OVER = "PreviousDomainNotCutOver"
LEGACY_UNAVAILABLE = "LegacyUnavailable"


def previous_domain_not_cut_over(domain: str, previous: str) -> ApplicationError:
    """The dependency order was not respected (accounts before users are cut over...)."""
    return ApplicationError(
        f"{previous} must be cut over before {domain} is migrated",
        {"domain": domain, "previous": previous},
        type=PREVIOUS_DOMAIN_NOT_CUT_OVER,
        non_retryable=True,
    )
