"""Benchmarks (`make bench` = `python -m bench`): each is a module of this package registered in
`bench.__main__.BENCHMARKS`, exposing `add_arguments(parser)` and `run(args) -> int`.

Speed is measured here, never asserted in tests.
"""
