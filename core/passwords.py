"""Password policy: length bounds and a zxcvbn strength score, with reasons."""

from __future__ import annotations

from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_SCORE = 3


def password_problems(password: str, *, user_inputs: list[str]) -> list[str]:
    """Return why a password is too weak (empty list when it is acceptable)."""
    if len(password) < MIN_LENGTH:
        return [f"must be at least {MIN_LENGTH} characters long"]
    if len(password) > MAX_LENGTH:
        return [f"must be at most {MAX_LENGTH} characters long"]
    result = zxcvbn(password, user_inputs=[u for u in user_inputs if u])
    if result["score"] >= MIN_SCORE:
        return []
    feedback = result.get("feedback", {})
    reasons = [feedback.get("warning") or "is too easy to guess"]
    reasons += list(feedback.get("suggestions", []))
    return [r for r in reasons if r]
