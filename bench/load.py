"""HTTP load generators for the latency benchmarks (`reads`, `gateway`): closed-loop clients,
each sending one request after another, and the CPU the servers under test spent meanwhile.

`wrk` (C, one thread) when it is on PATH (Debian's package): it costs far less CPU than the
servers it loads, which matters on a two-core machine where the generator shares the cores with
them. Else aiohttp in this process, which costs about as much per request as a lean server.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import psutil


@dataclass
class Run:
    """One load run against one URL."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: tuple[float, ...]  # CPU of each server process given, in that order
    errors: int
    timeouts: int = 0  # wrk gave up waiting (2 s): a loaded machine, not a wrong answer

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def cpu_ms(self, index: int = 0) -> float:
        """CPU milliseconds per request of the index-th server process."""
        # A 1 s warm-up on a loaded machine may finish no request at all.
        return 1000 * self.cpu_seconds[index] / max(self.requests, 1)

    @property
    def cpu_ms_per_request(self) -> float:
        """CPU milliseconds per request of the first server process."""
        return self.cpu_ms(0)


@dataclass
class Series:
    """Every run of one target, in round order."""

    runs: list[Run] = field(default_factory=list)

    def total_rate(self) -> float:
        """Requests per second over all rounds."""
        return sum(r.requests for r in self.runs) / sum(r.seconds for r in self.runs)

    def median(self, attribute: str) -> float:
        """The median over rounds of a per-run figure."""
        return float(statistics.median(getattr(r, attribute) for r in self.runs))

    def median_cpu_ms(self, index: int) -> float:
        """The median over rounds of one server's CPU ms per request."""
        return float(statistics.median(r.cpu_ms(index) for r in self.runs))

    @property
    def requests(self) -> int:
        """Requests over all rounds."""
        return sum(r.requests for r in self.runs)

    @property
    def errors(self) -> int:
        """Failed requests over all rounds."""
        return sum(r.errors for r in self.runs)


class Generator(Protocol):
    """Load `url` with `connections` closed-loop clients for `seconds`."""

    __name__: str

    async def __call__(
        self,
        url: str,
        headers: Mapping[str, str],
        connections: int,
        seconds: float,
        pids: Sequence[int],
    ) -> Run:
        """One run; the CPU of each process in `pids` is measured across it."""
        ...


def generator(choice: str) -> Generator:
    """`wrk`, `aiohttp`, or `auto`: wrk when it is installed."""
    if choice == "wrk" or (choice == "auto" and shutil.which("wrk")):
        return WrkLoad()
    return AiohttpLoad()


def _cpu_seconds(pids: Sequence[int]) -> tuple[float, ...]:
    times = [psutil.Process(pid).cpu_times() for pid in pids]
    return tuple(float(t.user + t.system) for t in times)


def _spent(before: tuple[float, ...], pids: Sequence[int]) -> tuple[float, ...]:
    return tuple(after - start for after, start in zip(_cpu_seconds(pids), before, strict=True))


class WrkLoad:
    """wrk (C, one thread): the generator costs far less than the server it loads."""

    __name__ = "wrk"
    LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)

    async def __call__(
        self,
        url: str,
        headers: Mapping[str, str],
        connections: int,
        seconds: float,
        pids: Sequence[int],
    ) -> Run:
        """One wrk run, parsed from its `--latency` report."""
        before = _cpu_seconds(pids)
        header_args = [arg for n, v in headers.items() for arg in ("-H", f"{n}: {v}")]
        process = await asyncio.create_subprocess_exec(
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            *header_args,
            url,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
        cpu = _spent(before, pids)
        text = out.decode()
        done = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
        if done is None:
            raise RuntimeError(f"wrk printed no summary: {text[:300]}")
        wall = float(done.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[done.group(3)]
        quantiles = {
            q: float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
            for q, v, unit in self.LATENCY.findall(text)
        }
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        errors = int(bad.group(1)) if bad else 0
        errors += sum(int(n) for n in re.findall(r"(?:connect|read|write) (\d+)", text))
        timeouts = sum(int(n) for n in re.findall(r"timeout (\d+)", text))
        return Run(
            int(done.group(1)),
            wall,
            quantiles.get("50", 0.0),
            quantiles.get("99", 0.0),
            cpu,
            errors,
            timeouts,
        )


class AiohttpLoad:
    """aiohttp in this process, when wrk is not installed (it costs more CPU than wrk)."""

    __name__ = "aiohttp"

    async def __call__(
        self,
        url: str,
        headers: Mapping[str, str],
        connections: int,
        seconds: float,
        pids: Sequence[int],
    ) -> Run:
        """One run of `connections` aiohttp clients in this process."""
        latencies: list[float] = []
        errors = 0
        connector = aiohttp.TCPConnector(limit=connections)
        before = _cpu_seconds(pids)
        started = time.perf_counter()
        deadline = started + seconds

        async def client(http: aiohttp.ClientSession) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    async with http.get(url, headers=dict(headers)) as answer:
                        await answer.read()
                        ok = answer.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1

        async with aiohttp.ClientSession(connector=connector) as http:
            await asyncio.gather(*(client(http) for _ in range(connections)))
        wall = time.perf_counter() - started
        cpu = _spent(before, pids)
        if len(latencies) < 2:
            return Run(len(latencies), wall, 0.0, 0.0, cpu, errors)
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        return Run(len(latencies), wall, cuts[49] * 1000, cuts[98] * 1000, cpu, errors)
