"""`python -m bench [name ...] [options]`: run the named benchmarks (default: all of them)."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

# name -> module; a new benchmark is a module with add_arguments(parser) and run(args) -> int.
BENCHMARKS: dict[str, str] = {
    "ledger": "bench.ledger",
    "transfers": "bench.transfers",
    "reads": "bench.reads",
    "events": "bench.events",
    "migration": "bench.migration",
    "gateway": "bench.gateway",
    "analytics": "bench.analytics",
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def main(argv: list[str] | None = None) -> int:
    """Parse `python -m bench` arguments and run the selected benchmarks in order."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="benchmark")
    for name in BENCHMARKS:
        module = _load(name)
        module.add_arguments(sub.add_parser(name, help=(module.__doc__ or "").splitlines()[0]))
    args = parser.parse_args(argv)
    if args.benchmark:
        return int(_load(args.benchmark).run(args))
    status = 0
    for name in BENCHMARKS:  # no name: every benchmark with its defaults
        status |= int(_load(name).run(parser.parse_args([name])))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
