"""AI problems."""

from __future__ import annotations

from core.errors import AppError


class PromptTooLong(AppError):
    status, type, title = 422, "prompt-too-long", "The message is too long"


class TooManyPrompts(AppError):
    status, type, title = 429, "too-many-prompts", "Too many messages; try again later"


class ProposalNotPending(AppError):
    status, type, title = 409, "proposal-not-pending", "The proposal cannot be confirmed"
    code = "ProposalNotPending"


class AssistantBusy(AppError):
    status, type, title = 503, "assistant-busy", "The answer is not ready yet"


class InvalidPeriod(AppError):
    status, type, title = 422, "invalid-period", "Invalid period or date range"


class InvalidCategorizeRequest(AppError):
    status, type, title = 422, "invalid-categorize-request", "Nothing to categorize"
