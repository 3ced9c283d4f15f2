"""`vortex dev` starts a server child again when it exits while starting, a bounded number of
times (the Temporal dev server can lose a race for the random ports it picks itself)."""

from __future__ import annotations

import pytest

from cli.supervisor import STARTUP_ATTEMPTS, _start
from core.processes import ChildProcess


class FlakyServer:
    """A server whose first `failures` starts exit during startup."""

    def __init__(self, failures: int) -> None:
        self.failures, self.spawns, self.stops = failures, 0, 0

    @property
    def child(self) -> ChildProcess:
        """Not watched in these tests."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Nothing to prepare."""

    def spawn(self) -> None:
        """Count the start."""
        self.spawns += 1

    async def ready(self) -> None:
        """Exit during startup while failures remain."""
        if self.spawns <= self.failures:
            raise RuntimeError("flaky exited with code 1 during startup")

    def stop(self) -> None:
        """Count the stop."""
        self.stops += 1


async def test_a_child_that_exits_while_starting_is_started_again() -> None:
    server = FlakyServer(failures=STARTUP_ATTEMPTS - 1)

    await _start(server)

    assert server.spawns == STARTUP_ATTEMPTS
    assert server.stops == STARTUP_ATTEMPTS - 1


async def test_a_child_that_keeps_exiting_while_starting_fails_the_start() -> None:
    server = FlakyServer(failures=STARTUP_ATTEMPTS)

    with pytest.raises(RuntimeError, match="during startup"):
        await _start(server)

    assert server.spawns == STARTUP_ATTEMPTS
    assert server.stops == STARTUP_ATTEMPTS
