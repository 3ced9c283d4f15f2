"""Open circuit breakers as Temporal sees them: a retryable failure whose next attempt waits
for the breaker's half-open window, not a storm of attempts against a system that is down.

`BreakerInterceptor` (on every worker) turns a `core.breakers.BreakerOpen` escaping any activity
into such a failure; activities that map their own errors (the rail's) use `retry_later`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from core.breakers import BreakerOpen

BREAKER_OPEN = "BreakerOpen"  # the ApplicationError type of a call an open breaker refused
# Never retry sooner than this, even when the breaker is about to half-open: the trial call
# goes to one attempt, the others would only find the breaker open again.
MIN_RETRY_DELAY = timedelta(milliseconds=200)


def retry_later(
    message: str, retry_after: float, *, type: str = BREAKER_OPEN, details: Any = None
) -> ApplicationError:
    """A retryable failure whose next attempt comes after `retry_after` seconds."""
    delay = max(MIN_RETRY_DELAY, timedelta(seconds=retry_after))
    extra = () if details is None else (details,)
    return ApplicationError(message, *extra, type=type, next_retry_delay=delay)


class _BreakerActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except BreakerOpen as exc:
            activity.logger.warning("outside system unavailable: %s", exc)
            raise retry_later(str(exc), exc.retry_after, details={"breaker": exc.name}) from exc


class BreakerInterceptor(Interceptor):
    """Worker interceptor: an open breaker fails the attempt with a retry delay (see module)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity."""
        return _BreakerActivityInbound(next)
