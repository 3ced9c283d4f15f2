"""The legacy monolith ("old VortexCore") as a simulator: its own PostgreSQL database with an
older schema (bcrypt users, NUMERIC balances, transactions), its own `/api/auth/login`,
`/api/accounts` and `/api/transactions` in an older shape, and the `migration_events` table
that triggers fill on every write (the change-data-capture source of the migration).

Production code never imports this package; the tests, `vortex legacy ...` and the benchmark do.
"""

from __future__ import annotations

from legacysim.schema import FROZEN_DOMAINS, create_schema, ensure_database, legacy_dsn

__all__ = ["FROZEN_DOMAINS", "create_schema", "ensure_database", "legacy_dsn"]
