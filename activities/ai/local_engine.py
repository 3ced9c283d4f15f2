"""The local deterministic engine: speaks the same interface as a model (messages and tools
in, text or tool calls out), choosing tools by rules and answering with templates. Offline,
free, and it never states a figure that a tool did not return."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from activities.ai import answers
from activities.ai.intents import question_intent
from models.base import utcnow

if TYPE_CHECKING:
    from activities.ai.llm import LlmReply


class LocalEngine:
    """Rules pick a tool for the last user message; templates answer from its results."""

    def __init__(self, today: Callable[[], date] | None = None) -> None:
        self._today = today or (lambda: utcnow().date())

    def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> LlmReply:
        """A tool call for a new question, or the templated answer once results are in."""
        from activities.ai.llm import LlmReply, ToolCall

        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        if last_user < 0:
            return LlmReply(content=answers.HELP)
        results = tool_results(messages[last_user + 1 :])
        if results:
            return LlmReply(content=answers.from_results(results))
        offered = {t["function"]["name"] for t in tools or () if "function" in t}
        intent = question_intent(str(messages[last_user].get("content") or ""), self._today())
        if intent is None or intent.tool not in offered:
            return LlmReply(content=answers.HELP)
        return LlmReply(
            content=None, tool_calls=(ToolCall("local-1", intent.tool, intent.arguments),)
        )


def tool_results(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(tool name, result) of each tool message, in order (unparseable ones skipped)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for m in messages:
        if m.get("role") != "tool":
            continue
        try:
            body = json.loads(str(m.get("content") or ""))
        except ValueError:
            continue
        if isinstance(body, dict) and isinstance(body.get("result"), dict):
            out.append((str(body.get("tool")), body["result"]))
    return out
