"""Transactions-feed errors: card authorisations that can no longer be cleared or reversed."""

from __future__ import annotations

from core.errors import Conflict


class AuthorizationClosed(Conflict):
    type, title, code = (
        "authorization-closed",
        "Authorisation already ended",
        ("AuthorizationClosed"),
    )
