"""Deterministic orchestration: one module per long-running business process."""
