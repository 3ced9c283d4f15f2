"""`vortex dev` as a real subprocess on free ports and a temporary state directory."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from core.embedded import free_ports, venv_binary
from tests.conftest import TEST_SECRET

PORT_SETTINGS = (
    "VORTEX_API_PORT",
    "VORTEX_RAIL_PORT",
    "VORTEX_EMBEDDED_POSTGRES_PORT",
    "VORTEX_EMBEDDED_REDIS_PORT",
    "VORTEX_EMBEDDED_TEMPORAL_PORT",
    "VORTEX_EMBEDDED_TEMPORAL_UI_PORT",
    "VORTEX_CODEC_SERVER_PORT",
)


def new_state_dir() -> Path:
    """A scratch state directory the postgres system user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="vortex-dev-test-"))
    path.chmod(0o755)
    return path


def distinct_ports(names: tuple[str, ...]) -> dict[str, int]:
    """One free port per setting name, no two alike."""
    return dict(zip(names, free_ports(len(names)), strict=True))


def dev_env(state_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment of a `vortex dev` on these ports: every service embedded, fsync off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VORTEX_")}
    env |= {name: str(port) for name, port in ports.items()}
    api, rail = ports["VORTEX_API_PORT"], ports["VORTEX_RAIL_PORT"]
    return env | {
        "VORTEX_STATE_DIR": str(state_dir),
        "VORTEX_RAIL_URL": f"http://127.0.0.1:{rail}",
        "VORTEX_API_PUBLIC_URL": f"http://127.0.0.1:{api}",
        "VORTEX_SECRET_KEY": TEST_SECRET,
        "VORTEX_EMBEDDED_POSTGRES_FSYNC": "false",
        "VORTEX_LOG_LEVEL": "INFO",
    }


@dataclass
class DevRun:
    """One `vortex dev` process; its output goes to a file in the state directory."""

    state_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: distinct_ports(PORT_SETTINGS))
    env_overrides: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def api(self) -> str:
        """Base URL of its API."""
        return f"http://127.0.0.1:{self.ports['VORTEX_API_PORT']}"

    def start(self) -> DevRun:
        """Launch it (without waiting)."""
        runs = len(list(self.state_dir.glob("dev-run-*.log")))
        self.log_path = self.state_dir / f"dev-run-{runs}.log"
        env = dev_env(self.state_dir, self.ports) | self.env_overrides
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603
                [venv_binary("vortex"), "dev"],
                cwd=self.state_dir,  # no .env of the checkout
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds until /ready answers 200; fails if the process exits first."""
        return wait_for_status(self, "/ready", 200, timeout)

    def pid_of(self, child: str) -> int:
        """The pid its pid file records for `child` (postgres, redis, temporal)."""
        record = json.loads((self.state_dir / "pids" / f"{child}.json").read_text())
        return int(record["pid"])

    def descendants(self) -> list[psutil.Process]:
        """Every process below it (the servers and their own children)."""
        assert self.proc is not None
        children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        return children

    def signal_and_wait(self, sig: signal.Signals, timeout: float = 60.0) -> tuple[int, float]:
        """Send `sig`; return the exit code and the seconds it took to exit."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL it and every process below it (test clean-up)."""
        if self.proc is None:
            return
        with_children = [*self.descendants()] if self.proc.poll() is None else []
        self.proc.kill()
        self.proc.wait()
        for proc in with_children:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def wait_for_status(run: DevRun, path: str, status: int, timeout: float) -> float:
    """Poll `path` of the run's API until it answers `status`; returns the seconds it took."""
    began = time.monotonic()
    with httpx.Client(base_url=run.api, timeout=2) as http:
        while time.monotonic() - began < timeout:
            assert run.proc is not None
            if run.proc.poll() is not None:
                raise AssertionError(f"vortex dev exited {run.proc.returncode}:\n{run.output()}")
            try:
                if http.get(path).status_code == status:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise AssertionError(f"{path} did not answer {status} in {timeout}s:\n{run.output()[-3000:]}")


def wait_for_output(run: DevRun, text: str, timeout: float = 30.0) -> str:
    """Wait until the run has printed `text`; returns its output."""
    deadline = time.monotonic() + timeout
    while text not in (out := run.output()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not printed in {timeout}s:\n{out[-3000:]}")
        time.sleep(0.1)
    return out


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `procs` still running (zombies count as gone)."""
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except psutil.NoSuchProcess:
            pass
    return left


def wait_all_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until none of `procs` runs; returns those still running after `timeout`."""
    deadline = time.monotonic() + timeout
    while (left := alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def remove_state_dir(path: Path) -> None:
    """Delete a scratch state directory."""
    shutil.rmtree(path, ignore_errors=True)
