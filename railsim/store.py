"""The simulated rail's memory across restarts: one SQLite file (stdlib `sqlite3`), as a real
rail keeps its payments. Payments are written on every change; webhook deliveries are not (a
restart forgets undelivered webhooks, and the sender's polling still finds the outcome).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from railsim.models import PaymentRequest, PaymentStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    rail_payment_id TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT
)
"""


@dataclass(frozen=True)
class StoredPayment:
    """One payment as the file holds it."""

    rail_payment_id: str
    request: PaymentRequest
    status: PaymentStatus
    reason: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class PaymentStore:
    """Payments by rail id in a SQLite file (created on first use)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)  # autocommit: one write a call
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def save(self, payment: StoredPayment) -> None:
        """Insert or update one payment."""
        self._db.execute(
            "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(rail_payment_id) "
            "DO UPDATE SET status = excluded.status, reason = excluded.reason, "
            "updated_at = excluded.updated_at, completed_at = excluded.completed_at",
            (
                payment.rail_payment_id,
                payment.request.reference,
                payment.request.model_dump_json(),
                payment.status,
                payment.reason,
                payment.created_at.isoformat(),
                payment.updated_at.isoformat(),
                payment.completed_at.isoformat() if payment.completed_at else None,
            ),
        )

    def load(self) -> list[StoredPayment]:
        """Every payment, oldest first."""
        rows = self._db.execute(
            "SELECT rail_payment_id, request, status, reason, created_at, updated_at, "
            "completed_at FROM payments ORDER BY created_at"
        ).fetchall()
        return [
            StoredPayment(
                rail_payment_id=row[0],
                request=PaymentRequest.model_validate_json(row[1]),
                status=row[2],
                reason=row[3],
                created_at=datetime.fromisoformat(row[4]),
                updated_at=datetime.fromisoformat(row[5]),
                completed_at=datetime.fromisoformat(row[6]) if row[6] else None,
            )
            for row in rows
        ]

    def close(self) -> None:
        """Close the file."""
        self._db.close()
