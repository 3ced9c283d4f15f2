"""RFC 9457 problem+json rendering for every error the API can produce: the one handler.

Routes raise `AppError`s (domain errors live beside their domain) or let a business rejection
propagate: a `LedgerError` from a direct call, or a workflow failure (`WorkflowFailureError`,
`WorkflowUpdateFailedError`) caused by an ApplicationError whose type a problem class claims
(`AppError.code`). A backing service that cannot be reached (Temporal, PostgreSQL, Redis) is a
503 with `Retry-After` (`api/unavailable.py`). Anything else is a logged 500 with no details.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_errors
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.security.enumeration import count_not_found
from api.unavailable import down_dependency, unavailable
from core.errors import AppError
from core.logging import get_logger
from core.tracing import current_trace_id
from temporal.errors import application_error

log = get_logger(__name__)
PROBLEM_BASE = "https://vortexcore.dev/problems/"
MEDIA_TYPE = "application/problem+json"


REQUEST_ID_HEADER = "X-Request-ID"


def problem(
    status: int, type_: str, title: str, detail: str, instance: str, **extensions: Any
) -> JSONResponse:
    """Build a problem+json response."""
    body = {
        "type": PROBLEM_BASE + type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extensions,
    }
    # The id the log lines of this request carry (also in the X-Request-ID header), so a
    # customer can quote it from the body alone.
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        body.setdefault("request_id", str(request_id))
    # With tracing on, the trace of this request (also on its log lines): one id finds the API
    # span, the workflow and its activities. Off, the request id is the correlation id.
    trace_id = current_trace_id()
    if trace_id:
        body.setdefault("trace_id", trace_id)
    headers = {}
    if "retry_after" in extensions:
        headers["Retry-After"] = str(extensions["retry_after"])
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _render(request: Request, exc: AppError) -> JSONResponse:
    return problem(exc.status, exc.type, exc.title, exc.detail, request.url.path, **exc.extensions)


async def _count_not_found(request: Request) -> None:
    """Count a logged-in caller's 404 (enumeration shows as bursts); never fails the answer."""
    user_id = structlog.contextvars.get_contextvars().get("user_id")
    services = getattr(request.app.state, "services", None)
    if not user_id or services is None:
        return
    try:
        await count_not_found(services.redis, str(user_id))
    except Exception:
        log.warning("could not count a 404")


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.status == 404:
        await _count_not_found(request)
    return _render(request, exc)


async def _temporal_failure(request: Request, exc: Exception) -> JSONResponse:
    """A business rejection from an activity or a workflow, as the problem its type names."""
    cause = application_error(exc)
    known = AppError.from_failure(cause) if cause is not None else None
    if known is None:
        return await _unhandled(request, exc)
    return _render(request, known)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return problem(
        422,
        "validation-error",
        "Invalid request",
        "The request is not valid; see errors.",
        request.url.path,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
        exc.status_code, "http-error"
    )
    return problem(exc.status_code, slug, str(exc.detail), str(exc.detail), request.url.path)


async def _maybe_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Errors that often mean a dependency is down: a 503 when they do, else a 500."""
    dependency = down_dependency(exc)
    if dependency is None:
        return await _unhandled(request, exc)
    services = getattr(request.app.state, "services", None)
    retry_after = services.settings.unavailable_retry_after_seconds if services else 5
    log.warning("dependency unavailable", dependency=dependency, error=type(exc).__name__)
    return _render(request, unavailable(dependency, retry_after))


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path)
    response = problem(
        500, "internal-error", "Internal error", "Something went wrong.", request.url.path
    )
    # Starlette sends this one from outside our middleware: give it the request id here, so
    # the customer can quote what the log line carries.
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = str(request_id)
    return response


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error through problem+json."""
    app.add_exception_handler(AppError, _app_error)
    for failure in (ApplicationError, WorkflowFailureError, WorkflowUpdateFailedError):
        app.add_exception_handler(failure, _temporal_failure)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for maybe_down in (
        RPCError,
        OSError,
        RuntimeError,
        redis_errors.ConnectionError,
        redis_errors.TimeoutError,
        sa_errors.DBAPIError,
        sa_errors.TimeoutError,
    ):
        app.add_exception_handler(maybe_down, _maybe_unavailable)
    app.add_exception_handler(Exception, _unhandled)
