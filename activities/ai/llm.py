"""The LLM seam: one client for any OpenAI-compatible endpoint, or the local engine.

API (what the assistant, the categorizer and the monthly reports call):

    client = LlmClient.from_settings(settings)        # one per process (it holds the breaker)
    reply = await client.complete(messages, tools)    # messages/tools in OpenAI chat format
    reply.content, reply.tool_calls, reply.source ("llm" | "local"), reply.prompt_tokens, ...

`complete` raises `LlmUnavailable` when the endpoint fails, is slow (timeout), answers
garbage or the breaker is open; `complete_or_local` falls back to the local deterministic
engine instead (its reply has `degraded=True`). With no `VORTEX_LLM_BASE_URL` every call is
answered by the local engine (offline, tests), never degraded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
import structlog

from activities.ai.local_engine import LocalEngine
from core.breakers import BreakerOpen, breaker
from core.metrics import record_llm_call
from core.settings import Settings

log = structlog.get_logger(__name__)

Message = dict[str, Any]  # one OpenAI chat message
ToolSpec = dict[str, Any]  # one OpenAI function tool


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked for, with parsed JSON arguments."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class LlmReply:
    """One completion: text or tool calls, where it came from and what it cost."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    source: Literal["llm", "local"] = "local"
    model: str = "local"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    degraded: bool = False  # the endpoint failed and the local engine answered
    failure: str | None = None  # why it was degraded
    extra: dict[str, Any] = field(default_factory=dict)


class LlmUnavailable(Exception):
    """The endpoint failed, timed out, answered garbage, or the breaker is open."""

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.kind = kind  # "breaker_open" | "timeout" | "error" | "garbage"


class LlmClient:
    """Completions from the configured endpoint through a circuit breaker, or locally."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        model: str,
        timeout_seconds: float,
        local: LocalEngine | None = None,
    ) -> None:
        self.model = model
        self.local = local or LocalEngine()
        self._sdk = (
            openai.AsyncOpenAI(
                base_url=base_url,
                api_key=api_key,
                timeout=timeout_seconds,
                max_retries=0,
                # The SDK's own default client, not the wrapper it makes when given none: that
                # wrapper's finalizer schedules `aclose()` on whatever loop runs when it is
                # collected, inside a workflow activation too ("Task was destroyed").
                http_client=openai.DefaultAsyncHttpxClient(),
            )
            if base_url
            else None
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LlmClient:
        """The client the settings describe (local engine when no endpoint is set)."""
        return cls(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            model=settings.llm_model,
            timeout_seconds=settings.llm_timeout_seconds,
        )

    @property
    def remote(self) -> bool:
        """Whether an endpoint is configured."""
        return self._sdk is not None

    async def complete(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        *,
        operation: str = "chat",
    ) -> LlmReply:
        """One completion from the endpoint (or the local engine when none is set)."""
        if self._sdk is None:
            return self.local.complete(messages, tools)
        started = time.monotonic()
        outcome = "error"
        try:
            async with breaker("llm", ignore=_endpoint_answered):
                reply = await self._remote(messages, tools)
            outcome = "ok"
        except BreakerOpen as exc:
            outcome = "breaker_open"
            raise LlmUnavailable(str(exc), kind="breaker_open") from exc
        except openai.APITimeoutError as exc:
            outcome = "timeout"
            raise LlmUnavailable("the LLM endpoint timed out", kind="timeout") from exc
        except openai.OpenAIError as exc:
            raise LlmUnavailable(
                f"the LLM endpoint failed: {type(exc).__name__}", kind="error"
            ) from exc
        except _Garbage as exc:
            outcome = "garbage"
            raise LlmUnavailable(
                f"the LLM endpoint answered garbage: {exc}", kind="garbage"
            ) from exc
        finally:
            done = outcome == "ok"
            record_llm_call(
                operation,
                self.model,
                outcome=outcome,
                seconds=time.monotonic() - started,
                prompt_tokens=reply.prompt_tokens if done else None,
                completion_tokens=reply.completion_tokens if done else None,
            )
        latency = int((time.monotonic() - started) * 1000)
        return LlmReply(**{**reply.__dict__, "latency_ms": latency})

    async def complete_or_local(
        self, messages: list[Message], tools: list[ToolSpec] | None = None
    ) -> LlmReply:
        """Like `complete`, but a failing endpoint is answered by the local engine (degraded)."""
        try:
            return await self.complete(messages, tools)
        except LlmUnavailable as exc:
            log.warning("llm.degraded", reason=str(exc), kind=exc.kind)
            local = self.local.complete(messages, tools)
            return LlmReply(**{**local.__dict__, "degraded": True, "failure": exc.kind})

    async def _remote(self, messages: list[Message], tools: list[ToolSpec] | None) -> LlmReply:
        assert self._sdk is not None
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            kwargs["tools"] = tools
        response = await self._sdk.chat.completions.create(**kwargs)
        return _parse(response)


def _endpoint_answered(exc: BaseException) -> bool:
    """A 4xx other than 429 is the endpoint refusing this request, not an outage: it must not
    open the breaker (it still fails the call)."""
    status = getattr(exc, "status_code", None)
    return (
        isinstance(exc, openai.APIStatusError)
        and status is not None
        and 400 <= status < 500
        and status != 429
    )


class _Garbage(Exception):
    """An answer that is not a usable completion (counts as a failure for the breaker)."""


def _parse(response: Any) -> LlmReply:
    """The reply in a completion, or `_Garbage`."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise _Garbage("no choices")
    message = choices[0].message
    calls: list[ToolCall] = []
    for call in message.tool_calls or ():
        function = getattr(call, "function", None)
        if function is None or not isinstance(function.name, str):
            raise _Garbage("a tool call without a function")
        try:
            arguments = json.loads(function.arguments or "{}")
        except ValueError as exc:
            raise _Garbage("tool arguments are not JSON") from exc
        if not isinstance(arguments, dict):
            raise _Garbage("tool arguments are not an object")
        calls.append(ToolCall(str(call.id), function.name, arguments))
    content = message.content
    if not calls and not (isinstance(content, str) and content.strip()):
        raise _Garbage("neither text nor tool calls")
    usage = getattr(response, "usage", None)
    return LlmReply(
        content=content if isinstance(content, str) else None,
        tool_calls=tuple(calls),
        source="llm",
        model=str(getattr(response, "model", "") or ""),
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )
