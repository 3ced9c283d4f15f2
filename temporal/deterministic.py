"""An activity that fails deterministically on its input stops retrying.

PostgreSQL refuses some values outright (SQLSTATE class 22, "data exception": a NUL in text,
a character the encoding cannot hold, a value out of range or too long for its column). The
same input fails the same way on every attempt, so retrying is an endless loop: inside
`input_refusals_are_final()` such a failure becomes a non-retryable
`ApplicationError(type="InvalidActivityInput")` (`core.errors.InvalidInput` on the API side),
and the workflow ends in its failed state. The API refuses such text at the edge
(`models.text`); this is the net behind it, around the activities' database transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError

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


@contextmanager
def input_refusals_are_final() -> Iterator[None]:
    """Turn a database refusal of the input into a non-retryable `InvalidActivityInput`."""
    try:
        yield
    except (DBAPIError, UnicodeError) as exc:
        if not deterministic_input_failure(exc):
            raise
        name = activity.info().activity_type if activity.in_activity() else "step"
        activity.logger.warning("input refused by the database; not retrying: %s", name)
        raise ApplicationError(
            f"{name}: the input was refused ({type(exc).__name__}); retrying cannot help",
            type=INVALID_ACTIVITY_INPUT,
            non_retryable=True,
        ) from None
