"""`vortex dev` supervises: real `vortex dev` processes on free ports and scratch state
directories (no demo), real children killed and signals sent; psutil checks what is left."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from cli.supervisor import Backoff, Supervisor
from core.embedded import EmbeddedRedis
from core.processes import read_records, stop_recorded, write_record
from tests.supervisor_support import (
    DevRun,
    alive,
    new_state_dir,
    remove_state_dir,
    wait_all_gone,
    wait_for_output,
)


@pytest.fixture(scope="module")
def running_dev() -> Iterator[DevRun]:
    """One `vortex dev` for the tests that leave it running, with the default fsync (on)."""
    state = new_state_dir()
    run = DevRun(state, env_overrides={"VORTEX_EMBEDDED_POSTGRES_FSYNC": "true"}).start()
    try:
        run.wait_ready()
        yield run
    finally:
        run.kill()
        remove_state_dir(state)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A scratch state directory for one test's own `vortex dev`."""
    path = new_state_dir()
    yield path
    remove_state_dir(path)


def test_a_second_instance_on_the_same_state_dir_exits_1_and_leaves_the_first_alone(
    running_dev: DevRun,
) -> None:
    other_ports = DevRun(running_dev.state_dir).ports  # not even a port clash: the lock says no
    second = DevRun(running_dev.state_dir, ports=other_ports).start()
    assert second.proc is not None
    assert second.proc.wait(60) == 1
    lines = second.output().strip().splitlines()
    assert f"another vortex dev (pid {running_dev.proc.pid})" in lines[-1]  # type: ignore[union-attr]
    assert str(running_dev.state_dir) in lines[-1]
    assert "VortexCore is up" not in second.output()
    assert running_dev.wait_ready(timeout=5) < 5  # its PostgreSQL was not touched
    assert "stopping" not in running_dev.output()


def test_a_busy_port_is_named_with_its_setting_and_nothing_starts(
    running_dev: DevRun, state_dir: Path
) -> None:
    ports = DevRun(state_dir).ports | {"VORTEX_API_PORT": running_dev.ports["VORTEX_API_PORT"]}
    run = DevRun(state_dir, ports=ports).start()
    assert run.proc is not None
    assert run.proc.wait(60) == 1
    last = run.output().strip().splitlines()[-1]
    assert f"port {ports['VORTEX_API_PORT']} (VORTEX_API_PORT)" in last
    assert "already in use" in last
    assert not (state_dir / "postgres").exists()
    assert not list((state_dir / "pids").glob("*.json"))


async def test_the_embedded_postgres_of_vortex_dev_is_durable_by_default(
    running_dev: DevRun,
) -> None:
    port = running_dev.ports["VORTEX_EMBEDDED_POSTGRES_PORT"]
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="vortex")
    try:
        assert await conn.fetchval("SHOW fsync") == "on"
    finally:
        await conn.close()


def test_a_killed_temporal_server_is_restarted_and_ready_turns_green_again(
    running_dev: DevRun,
) -> None:
    old = running_dev.pid_of("temporal")
    psutil.Process(old).kill()
    began = time.monotonic()
    recovered = running_dev.wait_ready(timeout=60)
    print(f"temporal SIGKILLed: /ready 200 again after {time.monotonic() - began:.1f}s")
    assert recovered < 60
    out = wait_for_output(running_dev, "child restarted")
    assert "child exited, restarting it" in out
    assert "child=temporal" in out
    assert running_dev.pid_of("temporal") != old


def test_after_a_sigkill_the_children_die_and_the_next_run_stops_leftovers_and_comes_up(
    state_dir: Path,
) -> None:
    first = DevRun(state_dir).start()
    second = DevRun(state_dir, ports=first.ports)
    orphan = EmbeddedRedis(
        state_dir / "redis", first.ports["VORTEX_EMBEDDED_REDIS_PORT"], pid_dir=state_dir / "pids"
    )
    try:
        first.wait_ready()
        children = first.descendants()
        assert {"postgres", "redis-server", "temporal"} <= {p.name() for p in children}
        first.proc.kill()  # type: ignore[union-attr]
        first.proc.wait()  # type: ignore[union-attr]
        began = time.monotonic()
        # The kernel signals each child as its parent dies (PR_SET_PDEATHSIG).
        assert not wait_all_gone(children, timeout=30)
        print(f"after the SIGKILL every child was gone in {time.monotonic() - began:.1f}s")

        # A leftover whose death signal never came (spawned from a worker thread, so it has
        # none), with a pid file as a killed run leaves it, holding the port the next run needs.
        spawning = threading.Thread(target=orphan.start)
        spawning.start()
        spawning.join()
        assert orphan.child.pid is not None

        second.start()
        print(f"the next run was ready in {second.wait_ready():.1f}s")
        out = second.output()
        assert "stopping a child left running by an earlier vortex dev" in out
        assert f"pid={orphan.child.pid}" in out
        assert orphan.child.exit_code() is not None  # it got SIGTERM; we reap it here
        assert second.pid_of("redis") != orphan.child.pid

        children = second.descendants()
        code, took = second.signal_and_wait(signal.SIGTERM)
        print(f"SIGTERM: exited {code} after {took:.1f}s")
        assert code == 0
        assert not alive(children)
        assert not list((state_dir / "pids").glob("*.json"))
    finally:
        orphan.stop()
        first.kill()
        second.kill()


def test_a_pid_file_whose_pid_now_belongs_to_another_program_is_not_signalled(
    state_dir: Path,
) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_dir = state_dir / "pids"
        record = write_record(pid_dir, "redis", stranger.pid, signal.SIGTERM)
        assert record.process() is not None
        # The same pid, as an earlier run would have recorded another program under it.
        earlier = dataclasses.replace(record, create_time=record.create_time - 30)
        (pid_dir / "redis.json").write_text(json.dumps(dataclasses.asdict(earlier)))
        assert stop_recorded(pid_dir) == []
        assert stranger.poll() is None
        assert read_records(pid_dir) == []  # the stale file is gone
    finally:
        stranger.kill()
        stranger.wait()


async def test_a_service_that_crashes_is_restarted_after_a_backoff() -> None:
    stop = asyncio.Event()
    starts: list[float] = []

    third_start = asyncio.Event()

    async def flaky(own_stop: asyncio.Event) -> None:
        starts.append(time.monotonic())
        if len(starts) < 3:
            raise RuntimeError("crashed")
        third_start.set()
        await own_stop.wait()

    supervisor = Supervisor(stop)
    supervisor.run("flaky", flaky)
    await asyncio.wait_for(third_start.wait(), 10)
    await supervisor.shutdown()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Each restart waited its backoff, 1 s then 2 s. Only lower bounds: a loaded CI machine
    # can be late (2.2 s for the first, once), never early; the exact sequence of delays is
    # checked without a clock in the next test.
    assert gaps[0] >= 0.9
    assert gaps[1] >= 1.9


def test_backoff_doubles_up_to_its_maximum_and_resets_after_a_healthy_run() -> None:
    backoff = Backoff(initial=1, maximum=5, healthy_after=60)
    assert [backoff.delay(0) for _ in range(5)] == [1, 2, 4, 5, 5]
    assert backoff.delay(61) == 1


def test_sighup_ends_vortex_dev_and_every_child(running_dev: DevRun) -> None:
    """Last in this module: it ends the module's `vortex dev` (closing its terminal)."""
    children = running_dev.descendants()
    assert {"postgres", "redis-server", "temporal"} <= {p.name() for p in children}
    code, took = running_dev.signal_and_wait(signal.SIGHUP)
    print(f"SIGHUP: exited {code} after {took:.1f}s")
    assert code == 0
    assert not alive(children)
    assert "stopping everything" in running_dev.output()
