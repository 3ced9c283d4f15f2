"""Failures as they come back from Temporal: find the business error inside."""

from __future__ import annotations

from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, FailureError


def application_error(exc: BaseException | None) -> ApplicationError | None:
    """The innermost ApplicationError behind a workflow or activity failure, if any."""
    current = exc
    while current is not None:
        if isinstance(current, ApplicationError):
            return current
        chained = FailureError | WorkflowFailureError | WorkflowUpdateFailedError
        current = current.cause if isinstance(current, chained) else None
    return None


def failure_type(exc: BaseException | None) -> str | None:
    """The `type` of the ApplicationError behind a failure (None when there is none)."""
    cause = application_error(exc)
    return cause.type if cause is not None else None


def non_retryable(exc: BaseException | None) -> ApplicationError | None:
    """The business rejection behind a failure: a non-retryable ApplicationError, or None."""
    cause = application_error(exc)
    return cause if cause is not None and cause.non_retryable else None
