"""The schemathesis run's plumbing: cases generated in a worker thread from the OpenAPI document,
sent to the real app on the test's event loop (where its services and workers live), and the
responses checked by schemathesis against the same document. Not `from_asgi`: its client runs
the app on an event loop of its own, away from the session's asyncpg pools and Redis clients."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture.providers import _get_local_constants
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

T = TypeVar("T")
Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Operation]
CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BASE_URL: Final = "http://testserver"
REQUEST_TIMEOUT: Final = 60.0  # one request, workflows included: a hang is a failure


@dataclass
class FuzzReport:
    """What the run did: cases per operation, statuses seen, failures by operation."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def seconds_so_far(self) -> float:
        """Time since the run started."""
        return time.monotonic() - self.started

    def summary(self) -> str:
        """One line for the log (the figures the report quotes)."""
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"schemathesis: {sum(self.cases.values())} cases over {len(self.cases)} operations "
            f"in {self.seconds:.1f} s; statuses {{{statuses}}}; "
            f"5xx: {sum(n for s, n in self.statuses.items() if s >= 500)}; "
            f"failing operations: {len(self.failures)}"
        )


# Seen once in CI: "SystemError: AST constructor recursion depth mismatch" from CPython 3.11
# itself, raised while this fuzz thread and other threads (the Temporal workflow sandbox compiles
# in its worker threads) built ASTs at the same time; the interpreter's recursion bookkeeping
# for AST construction is not safe across threads there. It says nothing of the API: an
# operation that failed with it is run again once; any other failure, or the same one twice,
# counts.
_INTERPRETER_RACE = "AST constructor recursion depth mismatch"


class Fuzzer:
    """Runs each operation's cases (in a thread) against the app (on the event loop)."""

    def __init__(
        self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop, report: FuzzReport
    ) -> None:
        self._client, self._loop, self._report = client, loop, report

    def on_loop(self, work: Awaitable[T]) -> T:
        """Run a coroutine on the test's event loop from the fuzzing thread."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(_coroutine(work), self._loop)
        return future.result(timeout=REQUEST_TIMEOUT)

    def send(self, case: AnyCase) -> httpx.Response:
        """Send one case through the ASGI app (the transport's kwargs, mapped to httpx)."""
        sent = case.as_transport_kwargs(base_url=BASE_URL)
        data = sent.get("data")
        return self.on_loop(
            self._client.request(
                sent["method"],
                sent["url"],
                params=sent.get("params"),
                headers=sent.get("headers"),
                cookies=sent.get("cookies"),
                json=sent.get("json"),
                content=data.encode() if isinstance(data, str) else data,
            )
        )

    def run(
        self, operation: Operation, strategy: st.SearchStrategy[AnyCase], examples: int
    ) -> None:
        """Up to `examples` cases of one operation; a failure is recorded, not raised, so one
        run lists every operation that fails."""
        label = operation.label

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,  # no .hypothesis directory in the repository
            derandomize=True,  # the same cases every run: a failure is reproducible
            phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: AnyCase) -> None:
            response = self.send(case)
            self._report.cases[label] += 1
            self._report.statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)

        for attempt in (1, 2):
            try:
                check()
            # Every failing operation, with schemathesis's explanation (its FailureGroup is a
            # BaseExceptionGroup); an interrupt still stops the run.
            except (Exception, BaseExceptionGroup) as exc:
                explained = _explain(exc)
                if attempt == 1 and _INTERPRETER_RACE in explained:
                    continue  # see _INTERPRETER_RACE: run the operation's cases again
                self._report.failures[label] = explained
            return


async def _coroutine(work: Awaitable[T]) -> T:
    return await work


def _explain(exc: BaseException) -> str:
    """The failure's message with its sub-failures (what schemathesis prints)."""
    parts = [str(exc)]
    if isinstance(exc, BaseExceptionGroup):
        parts += [f"- {type(e).__name__}: {e}" for e in exc.exceptions]
    return "\n".join(parts)[:4000]


def run_in_thread(work: Callable[[], None]) -> Awaitable[None]:
    """Fuzzing blocks (hypothesis is synchronous): run it beside the event loop.

    Hypothesis first mines constants from our modules with `ast.parse`, and Python 3.11's
    traceback module parses source lines the same way whenever the loop logs an exception; two
    threads in `ast.parse` at once trip CPython 3.11's "AST constructor recursion depth
    mismatch" SystemError (seen once, as a flaky failure). So the mining is done here, on the
    loop's thread, before the fuzzing thread starts; it rescans only modules imported later."""
    _get_local_constants()
    return asyncio.to_thread(work)


def timed(report: FuzzReport, work: Callable[[], None]) -> Callable[[], None]:
    """`work`, recording its duration in the report."""

    def wrapped() -> None:
        report.started = time.monotonic()
        try:
            work()
        finally:
            report.seconds = report.seconds_so_far()

    return wrapped


def cases(
    operation: Operation, headers: dict[str, str], known: dict[str, Any]
) -> st.SearchStrategy[AnyCase]:
    """Valid and invalid cases with generated path ids, and (where the operation takes them)
    with ids that exist, so a route is exercised beyond its 404."""
    names = {p.name for p in operation.path_parameters}
    real = {name: value for name, value in known.items() if name in names}
    strategies = [
        operation.as_strategy(mode, headers=headers, path_parameters=paths)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for paths in ([None, real] if real else [None])
    ]
    return st.one_of(strategies)
