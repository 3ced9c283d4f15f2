"""Thin FastAPI layer: authenticates, starts workflows, sends updates, queries state."""
