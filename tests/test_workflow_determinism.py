"""Workflow code makes no non-deterministic call: a static check of `workflows/` and the
`temporal/` helpers they import.

The workers' sandbox passes every module through (decision 19), so at run time it refuses only
the restricted builtins (`open`, `input`), not `datetime.now()` or `random.random()` through a
module (decision 83). This check covers what the sandbox no longer does; replay tests catch
the rest.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module (as imported) -> attributes whose call differs from run to run or does I/O
FORBIDDEN_CALLS: dict[str, frozenset[str]] = {
    "datetime": frozenset({"now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp"}),
    "date": frozenset({"today", "fromtimestamp"}),
    "time": frozenset(
        {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "sleep", "localtime"}
    ),
    "random": frozenset({"*"}),
    "secrets": frozenset({"*"}),
    "uuid": frozenset({"uuid1", "uuid4"}),
    "os": frozenset({"urandom", "getenv", "getpid", "listdir", "stat"}),
    "asyncio": frozenset({"sleep", "wait_for", "get_event_loop", "get_running_loop"}),
    "threading": frozenset({"*"}),
    "socket": frozenset({"*"}),
}
FORBIDDEN_BUILTINS = frozenset({"open", "input", "print", "exec", "eval"})
FORBIDDEN_ATTRIBUTES = {("os", "environ")}


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Each forbidden call or read in the source, as `file:line: what`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            target = node.func
            if isinstance(target, ast.Name) and target.id in FORBIDDEN_BUILTINS:
                found.append(f"{filename}:{node.lineno}: {target.id}()")
            elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                banned = FORBIDDEN_CALLS.get(target.value.id, frozenset())
                if "*" in banned or target.attr in banned:
                    found.append(f"{filename}:{node.lineno}: {target.value.id}.{target.attr}()")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in FORBIDDEN_ATTRIBUTES
        ):
            found.append(f"{filename}:{node.lineno}: {node.value.id}.{node.attr}")
    return sorted(found, key=lambda v: int(v.split(":")[1]))


def workflow_sources() -> list[Path]:
    """`workflows/*.py`, and the `temporal/` modules they import (code that runs in them)."""
    modules = sorted((ROOT / "workflows").glob("*.py"))
    helpers: set[Path] = set()
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("temporal."):
                helpers.add(ROOT / f"{(node.module or '').replace('.', '/')}.py")
    return modules + sorted(helpers)


def test_workflow_code_makes_no_nondeterministic_call() -> None:
    sources = workflow_sources()
    names = {p.relative_to(ROOT).as_posix() for p in sources}
    # The scan reaches the workflows and their helpers: an empty or wrong glob fails here.
    assert {"workflows/transfer.py", "workflows/external_payment.py"} <= names
    assert "temporal/status.py" in names
    assert all(p.is_file() for p in sources)
    found = [v for p in sources for v in violations(p.read_text(), p.relative_to(ROOT).as_posix())]
    assert found == []


def test_the_check_finds_clock_random_io_and_environment_reads() -> None:
    source = (
        "import datetime, random, os, uuid\n"
        "async def run():\n"
        "    a = datetime.now()\n"
        "    b = random.random()\n"
        "    c = os.environ['X']\n"
        "    d = uuid.uuid4()\n"
        "    e = open('/etc/hostname')\n"
        "    f = workflow.now()\n"
        "    g = workflow.uuid4()\n"
    )
    assert violations(source) == [
        "<source>:3: datetime.now()",
        "<source>:4: random.random()",
        "<source>:5: os.environ",
        "<source>:6: uuid.uuid4()",
        "<source>:7: open()",
    ]
