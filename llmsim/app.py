"""The simulator's HTTP app: OpenAI's `/v1/chat/completions` (non-streaming) and a control
endpoint for latency and failure injection."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from llmsim.rules import reply

Mode = Literal["rules", "error", "garbage", "hallucinate", "obey"]


class Control(BaseModel):
    """Behaviour knobs: `mode`, added latency, and how many next calls fail with 500."""

    mode: Mode = "rules"
    latency_seconds: float = 0.0
    fail_next: int = 0


@dataclass
class SimState:
    """The simulator's state: its control and every request it received."""

    control: Control = field(default_factory=Control)
    requests: list[dict[str, Any]] = field(default_factory=list)


def create_llm_app(state: SimState | None = None) -> FastAPI:
    """The simulator app (its state on `app.state.sim`)."""
    app = FastAPI(title="llmsim")
    app.state.sim = state or SimState()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/control")
    async def get_control(request: Request) -> Control:
        return request.app.state.sim.control  # type: ignore[no-any-return]

    @app.post("/v1/control")
    async def set_control(body: Control, request: Request) -> Control:
        request.app.state.sim.control = body
        return body

    @app.get("/v1/requests")
    async def requests(request: Request) -> list[dict[str, Any]]:
        return request.app.state.sim.requests  # type: ignore[no-any-return]

    @app.post("/v1/chat/completions", response_model=None)
    async def completions(request: Request) -> JSONResponse | PlainTextResponse:
        sim: SimState = request.app.state.sim
        body = await request.json()
        sim.requests.append(body)
        control = sim.control
        if control.latency_seconds:
            await asyncio.sleep(control.latency_seconds)
        if control.fail_next > 0:
            control.fail_next -= 1
            return JSONResponse({"error": {"message": "injected failure"}}, status_code=500)
        if control.mode == "error":
            return JSONResponse({"error": {"message": "model overloaded"}}, status_code=503)
        if control.mode == "garbage":
            return PlainTextResponse("<html>upstream gateway says hello</html>")
        message = reply(control.mode, body.get("messages", []), body.get("tools") or [])
        prompt_tokens = sum(
            len(str(m.get("content") or "")) // 4 + 1 for m in body.get("messages", [])
        )
        completion_tokens = len(str(message.get("content") or message.get("tool_calls"))) // 4 + 1
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "llmsim-1"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    return app
