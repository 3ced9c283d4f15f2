"""The OpenAPI document against reality: every answer an app gives during a test is recorded
(method, route template, status, media type) and checked against what the document declares
for that operation, so a route that answers an undeclared status fails the test that made it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class Answer:
    """One answer the app gave."""

    method: str
    route: str
    status: int
    media_type: str


@dataclass
class AnswerLog:
    """The answers an app gave, in order of first sight."""

    answers: set[Answer] = field(default_factory=set)


class _Recorder:
    """ASGI middleware recording each answer's route template (set by the router) and status."""

    def __init__(self, app: ASGIApp, log: AnswerLog) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", None)
                headers = dict(message.get("headers", []))
                media = headers.get(b"content-type", b"").decode("latin-1").split(";")[0]
                if route is not None:
                    self.log.answers.add(Answer(scope["method"], route, message["status"], media))
            await send(message)

        await self.app(scope, receive, recording)


def record_answers(app: FastAPI) -> AnswerLog:
    """Record every answer of `app` from now on (call before its first request)."""
    log = AnswerLog()
    app.add_middleware(_Recorder, log=log)
    return log


def undocumented(document: dict[str, Any], log: AnswerLog) -> list[str]:
    """The answers whose status, or media type, the document does not declare."""
    found = []
    for answer in sorted(log.answers, key=lambda a: (a.route, a.method, a.status)):
        operation = document["paths"].get(answer.route, {}).get(answer.method.lower())
        if operation is None:  # a route left out of the document (e.g. /metrics)
            continue
        declared = operation["responses"].get(str(answer.status))
        where = f"{answer.method} {answer.route} -> {answer.status}"
        if declared is None:
            found.append(f"{where}: status not declared")
        elif declared.get("content") and answer.media_type not in declared["content"]:
            found.append(f"{where}: {answer.media_type} not declared")
    return found
