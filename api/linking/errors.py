"""Linked-account errors; those with a `code` are how LinkAccountWorkflow refuses a confirmation."""

from __future__ import annotations

from core.errors import AppError, Conflict


class AlreadyLinked(Conflict):
    type, title = "already-linked", "Already linked"


class TooManyPendingLinks(Conflict):
    type, title = "too-many-pending-links", "Too many links awaiting confirmation"


class TooManyLinkAttempts(AppError):
    status, type, title = 429, "too-many-link-attempts", "Too many account links started lately"


class InvalidLinkState(Conflict):
    type, title, code = (
        "invalid-state",
        "Operation not allowed in the current state",
        ("InvalidLinkState"),
    )


class WrongAmounts(AppError):
    status, type, title, code = 400, "wrong-amounts", "Wrong amounts", "WrongAmounts"


class LinkFailed(AppError):
    status, type, title, code = 410, "link-failed", "Link failed", "TooManyAttempts"


class DepositsNotSent(Conflict):
    type, title, code = "deposits-not-sent", "Deposits not sent", "DepositsNotSent"
