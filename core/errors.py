"""The one base of every domain error, and the errors every domain shares.

An `AppError` carries its HTTP status, a stable problem slug (`type`) and a title; the API's one
handler renders it as RFC 9457 problem+json. Domain errors live beside their domain
(`activities/ledger/errors.py`, `api/auth/errors.py`, `api/payments/errors.py`, ...).

An error that also crosses Temporal sets `code`: the `ApplicationError.type` that an activity
or workflow fails with. `AppError.from_failure` finds the problem class for such a failure, so
a workflow's rejection reaches the caller as the same problem as a direct call's.
"""

from __future__ import annotations

import builtins
from typing import Any, ClassVar

from temporalio.exceptions import ApplicationError


class AppError(Exception):
    """Base error: rendered as application/problem+json by the API."""

    status: int = 400
    type: str = "bad-request"
    title: str = "Bad request"
    code: ClassVar[str | None] = None  # the Temporal failure type this problem stands for
    hide_details: ClassVar[bool] = False  # answer with the title only (e.g. a foreign 404)
    _by_code: ClassVar[dict[str, builtins.type[AppError]]] = {}

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions = extensions

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if code:
            AppError._by_code[code] = cls

    @classmethod
    def from_failure(cls, failure: ApplicationError) -> AppError | None:
        """The problem a Temporal ApplicationError stands for (None if no class claims it)."""
        kind = AppError._by_code.get(failure.type or "")
        if kind is None:
            return None
        if kind.hide_details:
            return kind()
        details = failure.details[0] if failure.details else None
        return kind(failure.message, **(details if isinstance(details, dict) else {}))

    @classmethod
    def slug_for(cls, code: str | None) -> str | None:
        """The problem slug of a Temporal failure type (the type itself if no class claims it)."""
        kind = AppError._by_code.get(code or "")
        return kind.type if kind is not None else code

    def failure(self) -> ApplicationError:
        """This error as the non-retryable ApplicationError a workflow or activity raises."""
        return ApplicationError(self.detail, self.extensions, type=self.code, non_retryable=True)


class NotFound(AppError):
    status, type, title = 404, "not-found", "Not found"


class Unauthorized(AppError):
    status, type, title = 401, "unauthorized", "Authentication required"


class Conflict(AppError):
    status, type, title = 409, "conflict", "Conflict with the current state"


class InvalidState(AppError):
    status, type, title = 409, "invalid-state", "Operation not allowed in the current state"


class ServiceUnavailable(AppError):
    status, type, title = 503, "service-unavailable", "A backing service is unavailable"


class IdempotencyKeyRequired(AppError):
    status, type, title = 400, "idempotency-key-required", "An Idempotency-Key header is required"


class IdempotencyKeyReused(AppError):
    status, type, title = 422, "idempotency-key-reused", "Idempotency-Key reused with another body"
    code = "IdempotencyKeyReused"


class InvalidInput(AppError):
    """A step refused its input deterministically (the database would not store it)."""

    status, type, title = 422, "invalid-input", "The input cannot be stored"
    code = "InvalidActivityInput"
