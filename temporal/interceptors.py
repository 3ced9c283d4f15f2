"""Worker interceptors: an activity that fails deterministically on its input stops retrying.

PostgreSQL refuses some values outright (SQLSTATE class 22, "data exception": a NUL in text,
a character the encoding cannot hold, a value out of range or too long for its column). The
same input fails the same way on every attempt, so retrying is an endless loop: such a failure
becomes a non-retryable `ApplicationError(type="InvalidActivityInput")` (`core.errors.InvalidInput`
on the API side), and the workflow ends in its failed state. The API refuses such text at the
edge (`models.text`); this is the net behind it, for inputs that come from anywhere else.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

INVALID_ACTIVITY_INPUT = "InvalidActivityInput"
_DATA_EXCEPTION_CLASS = "22"


def deterministic_input_failure(exc: BaseException) -> bool:
    """Whether an exception is the database refusing the input itself (retrying cannot help)."""
    if isinstance(exc, UnicodeError):  # e.g. a lone surrogate that cannot be encoded
        return True
    if not isinstance(exc, DBAPIError):
        return False
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and state.startswith(_DATA_EXCEPTION_CLASS)


class _DeterministicFailures(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except Exception as exc:
            if not deterministic_input_failure(exc):
                raise
            info = activity.info()
            activity.logger.warning(
                "activity input refused by the database; not retrying",
                extra={"activity_type": info.activity_type, "error": type(exc).__name__},
            )
            raise ApplicationError(
                f"{info.activity_type}: the input was refused ({type(exc).__name__}); "
                "retrying cannot help",
                type=INVALID_ACTIVITY_INPUT,
                non_retryable=True,
            ) from None


class DeterministicFailureInterceptor(Interceptor):
    """Turns deterministic input failures of activities into non-retryable errors."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity execution."""
        return _DeterministicFailures(next)
