"""Ledger rejections: a stable type each (the ApplicationError.type that crosses Temporal) and the
problem the API answers with for it.

A ledger operation raises `LedgerError(TYPE, message, **details)`: non-retryable, so an activity
fails at once. The problem classes below carry that TYPE as their `code`, so the API's one
handler turns a LedgerError, or a workflow failure caused by one, into the same problem+json.
"""

from __future__ import annotations

from typing import Any, Final

from temporalio.exceptions import ApplicationError

from core.errors import AppError, Conflict, NotFound

INSUFFICIENT_FUNDS: Final = "InsufficientFunds"
ACCOUNT_CLOSED: Final = "AccountClosed"
ACCOUNT_NOT_EMPTY: Final = "AccountNotEmpty"
CURRENCY_MISMATCH: Final = "CurrencyMismatch"
UNKNOWN_CURRENCY: Final = "UnknownCurrency"
INVALID_AMOUNT: Final = "InvalidAmount"
UNKNOWN_ACCOUNT: Final = "UnknownAccount"
UNKNOWN_USER: Final = "UnknownUser"
UNKNOWN_HOLD: Final = "UnknownHold"
UNKNOWN_TRANSACTION: Final = "UnknownTransaction"
IDEMPOTENCY_KEY_REUSED: Final = "IdempotencyKeyReused"  # core.errors.IdempotencyKeyReused
UNBALANCED_ENTRY: Final = "UnbalancedEntry"
HOLD_ALREADY_RESOLVED: Final = "HoldAlreadyResolved"
HOLD_EXPIRED: Final = "HoldExpired"
INVALID_SWEEP_TARGET: Final = "InvalidSweepTarget"
INVALID_CATEGORY: Final = "InvalidCategory"
INVALID_REQUEST: Final = "InvalidRequest"


class LedgerError(ApplicationError):
    """A business rejection: non-retryable, with a stable `type` from the constants above.

    Being an ApplicationError, it crosses Temporal unchanged when raised in an activity; the API
    can let it propagate when it calls the plain functions. `info` holds JSON-safe details.
    """

    def __init__(self, type_: str, message: str, **info: Any) -> None:
        super().__init__(message, info, type=type_, non_retryable=True)
        self.info = info


# --- the problem each rejection is to the API -----------------------------------------------


class InsufficientFunds(Conflict):
    type, title, code = "insufficient-funds", "Insufficient funds", INSUFFICIENT_FUNDS


class AccountClosed(Conflict):
    type, title, code = "account-closed", "Account closed", ACCOUNT_CLOSED


class AccountNotEmpty(Conflict):
    type, title, code = "account-not-empty", "Account not empty", ACCOUNT_NOT_EMPTY


class HoldAlreadyResolved(Conflict):
    type, title, code = "hold-already-resolved", "Hold already resolved", HOLD_ALREADY_RESOLVED


class HoldExpired(Conflict):
    type, title, code = "hold-expired", "Hold expired", HOLD_EXPIRED


class _Unprocessable(AppError):
    status = 422


class CurrencyMismatch(_Unprocessable):
    type, title, code = "currency-mismatch", "Currency mismatch", CURRENCY_MISMATCH


class UnknownCurrency(_Unprocessable):
    type, title, code = "unknown-currency", "Unknown currency", UNKNOWN_CURRENCY


class InvalidAmount(_Unprocessable):
    type, title, code = "invalid-amount", "Invalid amount", INVALID_AMOUNT


class UnbalancedEntry(_Unprocessable):
    type, title, code = "unbalanced-entry", "Unbalanced entry", UNBALANCED_ENTRY


class InvalidSweepTarget(_Unprocessable):
    type, title, code = "invalid-sweep-target", "Invalid sweep target", INVALID_SWEEP_TARGET


class InvalidCategory(_Unprocessable):
    type, title, code = "invalid-category", "Invalid category", INVALID_CATEGORY


class InvalidRequest(_Unprocessable):
    type, title, code = "invalid-request", "Invalid request", INVALID_REQUEST


# Unknown objects are a plain 404 without details: nothing about another customer leaks.
class UnknownAccount(NotFound):
    code, hide_details = UNKNOWN_ACCOUNT, True


class UnknownUser(NotFound):
    code, hide_details = UNKNOWN_USER, True


class UnknownHold(NotFound):
    code, hide_details = UNKNOWN_HOLD, True


class UnknownTransaction(NotFound):
    code, hide_details = UNKNOWN_TRANSACTION, True


LEDGER_ERROR_TYPES: Final[frozenset[str]] = frozenset(
    {
        INSUFFICIENT_FUNDS,
        ACCOUNT_CLOSED,
        ACCOUNT_NOT_EMPTY,
        CURRENCY_MISMATCH,
        UNKNOWN_CURRENCY,
        INVALID_AMOUNT,
        UNKNOWN_ACCOUNT,
        UNKNOWN_USER,
        UNKNOWN_HOLD,
        UNKNOWN_TRANSACTION,
        IDEMPOTENCY_KEY_REUSED,
        UNBALANCED_ENTRY,
        HOLD_ALREADY_RESOLVED,
        HOLD_EXPIRED,
        INVALID_SWEEP_TARGET,
        INVALID_CATEGORY,
        INVALID_REQUEST,
    }
)
