"""Child processes of `vortex dev` (and the test suite's servers): spawned so that they die with
their parent, recorded in pid files, and stopped only once the pid is proven to be theirs.

A pid file (`<state>/pids/<name>.json`) holds the pid, the process's start time and its
executable as psutil reported them at spawn. A later run trusts a pid file only while all three
still match, so a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from core.logging import get_logger

log = get_logger(__name__)
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_START_TIME_TOLERANCE = 0.1  # seconds; psutil's start times are in clock ticks


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the kernel send `sig` to the child when its parent dies (Linux;
    elsewhere None). The kernel's "parent" is the spawning thread, so only a spawn from the main
    thread (which lives as long as the process) gets it; a worker thread's spawn gets None."""
    if _libc is None or threading.current_thread() is not threading.main_thread():
        return None
    prctl = _libc.prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


@dataclass(frozen=True)
class PidRecord:
    """What a pid file says about one child: enough to recognise it later."""

    name: str
    pid: int
    create_time: float
    exe: str
    stop_signal: int

    def process(self) -> psutil.Process | None:
        """The live process this record describes, or None if it is gone or the pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            same = abs(proc.create_time() - self.create_time) < _START_TIME_TOLERANCE
            if same and proc.status() != psutil.STATUS_ZOMBIE and _exe(proc) == self.exe:
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        return None


def _exe(proc: psutil.Process) -> str:
    # The executable's path, not argv[0]: redis-server and postgres rewrite their titles.
    try:
        return str(proc.exe())
    except psutil.AccessDenied:
        return str(proc.name())


def _record_path(pid_dir: Path, name: str) -> Path:
    return pid_dir / f"{name}.json"


def write_record(pid_dir: Path, name: str, pid: int, stop_signal: signal.Signals) -> PidRecord:
    """Write the pid file of a freshly spawned child."""
    proc = psutil.Process(pid)
    record = PidRecord(name, pid, proc.create_time(), _exe(proc), int(stop_signal))
    pid_dir.mkdir(parents=True, exist_ok=True)
    path = _record_path(pid_dir, name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)
    return record


def read_records(pid_dir: Path) -> list[PidRecord]:
    """Every readable pid file under `pid_dir` (unreadable ones are removed)."""
    records = []
    for path in sorted(pid_dir.glob("*.json")):
        try:
            records.append(PidRecord(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            log.warning("unreadable pid file removed", path=str(path))
            path.unlink(missing_ok=True)
    return records


def remove_record(pid_dir: Path, record: PidRecord) -> None:
    """Remove a child's pid file if it still describes that child."""
    path = _record_path(pid_dir, record.name)
    with contextlib.suppress(OSError, ValueError, TypeError):
        if PidRecord(**json.loads(path.read_text())).pid == record.pid:
            path.unlink()


def stop_process(proc: psutil.Process, sig: int, timeout: float) -> None:
    """Send `sig`, wait up to `timeout` seconds, then SIGKILL the process."""
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(sig)
        if not _gone(proc, timeout):
            log.warning("child did not stop in time, killing it", pid=proc.pid, timeout=timeout)
            proc.kill()
            _gone(proc, 5)


def _gone(proc: psutil.Process, timeout: float) -> bool:
    """Wait until the process has exited (a zombie counts: it is reaped if it is ours)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(psutil.Error, ChildProcessError):
                    proc.wait(0)
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def stop_recorded(pid_dir: Path, *, timeout: float = 20.0, force: bool = False) -> list[str]:
    """Stop every child a pid file under `pid_dir` names and that is still that child (SIGKILL
    at once if `force`); remove the files. Returns the names of the children stopped."""
    stopped = []
    for record in read_records(pid_dir):
        proc = record.process()
        if proc is not None:
            log.warning(
                "stopping a child left running by an earlier vortex dev",
                child=record.name,
                pid=record.pid,
            )
            stop_process(proc, signal.SIGKILL if force else record.stop_signal, timeout)
            stopped.append(record.name)
        remove_record(pid_dir, record)
    return stopped


class ChildProcess:
    """One spawned server: dies with its parent, recorded in a pid file if `pid_dir` is set."""

    def __init__(self, name: str, stop_signal: signal.Signals, pid_dir: Path | None) -> None:
        self.name, self.stop_signal, self.pid_dir = name, stop_signal, pid_dir
        self._popen: subprocess.Popen[bytes] | None = None
        self._record: PidRecord | None = None

    @property
    def pid(self) -> int | None:
        """The pid of the running child, if one was spawned."""
        return self._popen.pid if self._popen else None

    def spawn(
        self, args: Sequence[str], *, output: IO[Any] | int | None = None, **popen: Any
    ) -> None:
        """Start the child in a session of its own (Ctrl-C reaches only us; we stop it in
        order) that receives its stop signal when we die."""
        self._popen = subprocess.Popen(  # noqa: S603 - our own binaries, no shell
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
            preexec_fn=die_with_parent(self.stop_signal),
            **popen,
        )
        if self.pid_dir is not None:
            self._record = write_record(self.pid_dir, self.name, self._popen.pid, self.stop_signal)

    def exit_code(self) -> int | None:
        """None while the child runs, else its exit code (negative: killed by that signal)."""
        if self._popen is None:
            return 0
        return self._popen.poll()

    def stop(self, timeout: float = 20.0) -> None:
        """Send the stop signal, SIGKILL after `timeout` seconds, reap it, forget its pid file."""
        if self._popen is not None and self._popen.poll() is None:
            self._popen.send_signal(self.stop_signal)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time, killing it", child=self.name)
                self._popen.kill()
                self._popen.wait(5)
        if self.pid_dir is not None and self._record is not None:
            remove_record(self.pid_dir, self._record)
        self._record = None


def is_program(pid: int, name: str, argument: str) -> bool:
    """Whether `pid` is alive, is called `name` and has `argument` on its command line."""
    try:
        proc = psutil.Process(pid)
        return proc.name() == name and argument in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
