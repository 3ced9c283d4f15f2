"""Payment errors: transfers, external payments and saved beneficiaries.

The ones with a `code` are also how ExternalPaymentWorkflow refuses an update, so a refusal from
the workflow and one decided by the API read the same to the caller.
"""

from __future__ import annotations

from core.errors import AppError, Conflict
from core.iban import IbanError, validate_iban


class NotCancellable(Conflict):
    type, title, code = "not-cancellable", "Payment cannot be cancelled", "NotCancellable"


class NotAwaitingApproval(Conflict):
    type, title, code = (
        "not-awaiting-approval",
        "Payment is not awaiting approval",
        ("NotAwaitingApproval"),
    )


class NotRetryable(Conflict):
    type, title = "not-retryable", "Payment is not waiting for a retry"


class SameAccount(AppError):
    status, type, title = 422, "same-account", "Source and destination are the same account"


class InvalidExecuteAt(AppError):
    status, type, title = 422, "invalid-execute-at", "Invalid execution time"


class UnsupportedPaymentMethod(AppError):
    status, type, title = 422, "unsupported-payment-method", "Unsupported payment method"


class InvalidIban(AppError):
    status, type, title = 422, "invalid-iban", "Invalid IBAN"


class InvalidHolderName(AppError):
    status, type, title = 422, "invalid-holder-name", "Invalid holder name"


class InvalidCardToken(AppError):
    status, type, title = 422, "invalid-card-token", "Invalid card token"


def valid_iban(raw: str) -> str:
    """The IBAN normalized, or 422 `invalid-iban`."""
    try:
        return validate_iban(raw)
    except IbanError as exc:
        raise InvalidIban(str(exc)) from exc
