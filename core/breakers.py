"""Circuit breakers around the outside systems (rail, LLM, SMTP), one per system per process.

Built on `purgatory` (in-memory state). Use a breaker around one call to the outside system:

    async with breaker("rail", ignore=lambda exc: ...):
        answer = await client.request(...)

`failure_threshold` failures in a row open the breaker; while open every call fails at once
with `BreakerOpen` (which says how long until calls are let through again: `retry_after`).
After the recovery time one trial call goes through (half-open) while the others are still
refused, with a short `retry_after`: its success closes the breaker, its failure reopens it.
(purgatory itself lets every call through once half-open; a recovering system would get the
whole backlog at once.)
`ignore` tells which exceptions mean "the system answered" (a rejection, a 404) and must not
count as failures; a cancellation counts neither as a failure nor as a success.

State is per process (every API, worker and relay process has its own breakers): it shows in
`vortex_breaker_state{name}` (0 closed, 1 half-open, 2 open), `vortex_breaker_opens_total{name}`
and `vortex_breaker_refused_total{name}` and in `/health/dependencies`. Activities turn a
`BreakerOpen` into a retryable Temporal failure whose next attempt waits for the half-open
window (`temporal/breakers.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

from prometheus_client import Counter, Gauge
from purgatory import AsyncCircuitBreakerFactory, AsyncInMemoryUnitOfWork
from purgatory.domain.model import OpenedState
from purgatory.service._async.repository import AsyncInMemoryRepository

from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)

BreakerName = Literal["rail", "llm", "smtp"]
BREAKER_NAMES: tuple[BreakerName, ...] = ("rail", "llm", "smtp")
BreakerStateName = Literal["closed", "half-open", "open"]
STATE_VALUES: dict[BreakerStateName, int] = {"closed": 0, "half-open": 1, "open": 2}

BREAKER_STATE = Gauge(
    "vortex_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["name"]
)
BREAKER_OPENS = Counter("vortex_breaker_opens_total", "Times a circuit breaker opened", ["name"])
BREAKER_REFUSED = Counter(
    "vortex_breaker_refused_total", "Calls refused at once by an open circuit breaker", ["name"]
)


# How soon a call refused while another one is the half-open trial may try again.
TRIAL_RETRY_SECONDS = 1.0


class BreakerOpen(Exception):
    """The breaker refused the call: the system failed repeatedly and is left alone meanwhile."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit breaker {name!r} is open: retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after  # seconds until a trial call is let through


@dataclass(frozen=True)
class BreakerState:
    """A breaker as health and metrics report it."""

    name: str
    state: BreakerStateName
    failures: int  # consecutive failures counted while closed
    retry_after: float  # seconds until half-open (0 unless open)
    failure_threshold: int
    recovery_seconds: float


Ignore = Callable[[BaseException], bool]


class BreakerBoard:
    """The breakers of this process, with the thresholds from settings."""

    def __init__(self, failure_threshold: int = 5, recovery_seconds: float = 30.0) -> None:
        self.failure_threshold = failure_threshold
        self.recovery_seconds = recovery_seconds
        self._uow = AsyncInMemoryUnitOfWork()
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failure_threshold, default_ttl=recovery_seconds, uow=self._uow
        )
        self._factory.add_listener(self._on_event)
        self._trials: set[str] = set()  # breakers whose one half-open trial call is running

    def _on_event(self, name: str, event_name: str, event: Any) -> None:
        if event_name != "state_changed":
            return
        state = _public_state(event.state)
        log.warning("circuit breaker changed state", breaker=name, state=state)
        if state == "open":
            BREAKER_OPENS.labels(name=name).inc()

    @asynccontextmanager
    async def guard(self, name: str, ignore: Ignore | None = None) -> AsyncIterator[None]:
        """Run the body under breaker `name`; raises BreakerOpen while the breaker is open."""
        exclude: list[Any] = [BreakerOpen]  # a cancellation never reaches purgatory (below)
        if ignore is not None:
            exclude.append((Exception, ignore))
        circuit = await self._factory.get_breaker(name, exclude=exclude)
        # No await from this check to the trial's registration: one trial per breaker.
        trial = self.state(name).state == "half-open"
        if trial and name in self._trials:
            BREAKER_REFUSED.labels(name=name).inc()
            raise BreakerOpen(name, min(TRIAL_RETRY_SECONDS, self.recovery_seconds))
        if trial:
            self._trials.add(name)
        try:
            try:
                await circuit.__aenter__()
            except OpenedState as exc:
                BREAKER_REFUSED.labels(name=name).inc()
                retry_after = max(0.0, exc.opened_at + self.recovery_seconds - time.time())
                raise BreakerOpen(name, retry_after) from None
            try:
                yield
            except asyncio.CancelledError:
                # No verdict either way: purgatory would count an excluded exception as a
                # success, closing a half-open breaker on a trial that never finished (or
                # resetting a closed one's failure count). The next call is the trial instead.
                raise
            except BaseException as exc:
                await circuit.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            await circuit.__aexit__(None, None, None)
        finally:
            if trial:
                self._trials.discard(name)

    def state(self, name: str) -> BreakerState:
        """The breaker's state now (an open one past its recovery time reads as half-open)."""
        # The in-memory store hands out the live Context objects the breakers update.
        contexts = cast(AsyncInMemoryRepository, self._uow.contexts).breakers
        context = contexts.get(name)
        if context is None:
            return BreakerState(name, "closed", 0, 0.0, *self._limits)
        public = _public_state(context.state)
        retry_after = 0.0
        if public == "open" and context.opened_at is not None:
            retry_after = context.opened_at + self.recovery_seconds - time.time()
            if retry_after <= 0:
                public, retry_after = "half-open", 0.0
        failures = context.failure_count or 0
        return BreakerState(name, public, failures, retry_after, *self._limits)

    @property
    def _limits(self) -> tuple[int, float]:
        return self.failure_threshold, self.recovery_seconds


def _public_state(purgatory_state: str) -> BreakerStateName:
    if purgatory_state == "opened":
        return "open"
    return "half-open" if purgatory_state == "half-opened" else "closed"


_board = BreakerBoard()


def configure_breakers(settings: Settings) -> None:
    """Fresh breakers with the thresholds from settings (process start; tests between tests)."""
    global _board
    _board = BreakerBoard(settings.breaker_failure_threshold, settings.breaker_recovery_seconds)


def reset_breakers() -> None:
    """Fresh breakers with the default thresholds (tests: no state left behind)."""
    global _board
    _board = BreakerBoard()


def breaker(name: BreakerName, ignore: Ignore | None = None) -> Any:
    """An async context manager guarding one call to the outside system `name`:
    `async with breaker("llm"): ...`; raises `BreakerOpen` while the breaker is open."""
    return _board.guard(name, ignore)


def breaker_states() -> list[BreakerState]:
    """Every breaker's state in this process, for health."""
    return [_board.state(name) for name in BREAKER_NAMES]


def _gauge_reader(name: str) -> Callable[[], float]:
    return lambda: float(STATE_VALUES[_board.state(name).state])


for _name in BREAKER_NAMES:
    BREAKER_STATE.labels(name=_name).set_function(_gauge_reader(_name))
