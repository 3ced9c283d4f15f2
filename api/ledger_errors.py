"""Translate ledger rejections (LedgerError / ApplicationError types) into problem+json errors."""

from __future__ import annotations

from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, FailureError

from activities import ledger
from core.errors import AppError

# type -> (HTTP status, problem slug)
_STATUS: dict[str, tuple[int, str]] = {
    ledger.INSUFFICIENT_FUNDS: (409, "insufficient-funds"),
    ledger.ACCOUNT_CLOSED: (409, "account-closed"),
    ledger.ACCOUNT_NOT_EMPTY: (409, "account-not-empty"),
    ledger.HOLD_ALREADY_RESOLVED: (409, "hold-already-resolved"),
    ledger.HOLD_EXPIRED: (409, "hold-expired"),
    ledger.CURRENCY_MISMATCH: (422, "currency-mismatch"),
    ledger.UNKNOWN_CURRENCY: (422, "unknown-currency"),
    ledger.INVALID_AMOUNT: (422, "invalid-amount"),
    ledger.IDEMPOTENCY_KEY_REUSED: (422, "idempotency-key-reused"),
    ledger.UNBALANCED_ENTRY: (422, "unbalanced-entry"),
    ledger.INVALID_SWEEP_TARGET: (422, "invalid-sweep-target"),
    ledger.INVALID_CATEGORY: (422, "invalid-category"),
    ledger.INVALID_REQUEST: (422, "invalid-request"),
    ledger.UNKNOWN_ACCOUNT: (404, "not-found"),
    ledger.UNKNOWN_TRANSACTION: (404, "not-found"),
    ledger.UNKNOWN_HOLD: (404, "not-found"),
    ledger.UNKNOWN_USER: (404, "not-found"),
}


class LedgerProblem(AppError):
    """A ledger rejection rendered as a problem; status and type come from the mapping."""

    def __init__(self, status: int, slug: str, detail: str, **extensions: object) -> None:
        super().__init__(detail, **extensions)
        self.status, self.type, self.title = status, slug, slug.replace("-", " ").capitalize()


def application_error(exc: BaseException) -> ApplicationError | None:
    """The innermost ApplicationError behind a workflow or activity failure, if any."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ApplicationError):
            return current
        current = (
            current.cause if isinstance(current, FailureError | WorkflowFailureError) else None
        )
    return None


def as_problem(exc: ApplicationError) -> AppError:
    """Map a ledger ApplicationError to an AppError (unknown types become 500s upstream)."""
    status, slug = _STATUS.get(exc.type or "", (500, "internal-error"))
    details = exc.details[0] if exc.details and isinstance(exc.details[0], dict) else {}
    if status == 404:
        return LedgerProblem(404, "not-found", "Not found")
    return LedgerProblem(status, slug, exc.message, **details)
