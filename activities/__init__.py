"""Idempotent side effects, one module per domain, as methods of dependency-holding classes."""
