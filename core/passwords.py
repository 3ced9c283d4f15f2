"""Password policy: length bounds and a zxcvbn strength score, with reasons.

Passwords are 12 to 128 characters of any kind (they are hashed with argon2id, which takes any
length of bytes, and never stored or shown, so no character is refused or normalised). zxcvbn
refuses inputs over 72 characters (its matching is super-linear), so a longer password is
scored on its first 72 characters: a strong prefix is strong, and the rest only adds to it.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_SCORE = 3
SCORED_PREFIX = 72  # zxcvbn's own maximum input length, in characters
RULE = f"{MIN_LENGTH} to {MAX_LENGTH} characters, any characters"


def password_problems(password: str, *, user_inputs: list[str]) -> list[str]:
    """Return why a password is too weak (empty list when it is acceptable)."""
    if len(password) < MIN_LENGTH:
        return [f"must be at least {MIN_LENGTH} characters long"]
    if len(password) > MAX_LENGTH:
        return [f"must be at most {MAX_LENGTH} characters long"]
    inputs = [u[:SCORED_PREFIX] for u in user_inputs if u]
    result = zxcvbn(password[:SCORED_PREFIX], user_inputs=inputs)
    if result["score"] >= MIN_SCORE:
        return []
    feedback = result.get("feedback", {})
    reasons = [feedback.get("warning") or "is too easy to guess"]
    reasons += list(feedback.get("suggestions", []))
    return [r for r in reasons if r]
