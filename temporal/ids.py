"""Workflow-id builders: business ids only, never personal data."""

from __future__ import annotations

import uuid


def registration_workflow_id(registration_id: uuid.UUID) -> str:
    """`registration-<registration uuid>`."""
    return f"registration-{registration_id}"
