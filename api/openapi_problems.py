"""Problem responses in the OpenAPI document: every status a route can answer with problem+json,
derived from the route where possible, declared at the route (`problems(...)`) where not.

Derived from each route's dependencies and parameters (`problem_statuses`):
- every route: 500 (an unexpected error); 503 when it uses the services (a dependency is down);
- a bearer token: 401; an id in the path, the query or the body: 404 (unknown, or another
  customer's: no existence leak);
- any parameter or body: 422 (validation, our `Problem` with `errors`, not FastAPI's schema);
- a body: 413 (the body-size cap) and 400 (bytes that are not UTF-8 JSON);
- an `Idempotency-Key` header: 400 (missing or malformed key) and 422 (reused with another body).
Everything else a route answers (409 on cancel, 429 on link, ...) is declared at the route with
`responses=problems(409, 429)`. All of them share one `Problem` schema (RFC 9457 + extensions).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final, get_args

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security.base import SecurityBase
from pydantic import BaseModel, ConfigDict, Field

from api.problems import MEDIA_TYPE
from api.staff import ROLES_ATTRIBUTE

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
REF: Final = "#/components/schemas/{model}"
_FASTAPI_422: Final = "#/components/schemas/HTTPValidationError"

DESCRIPTIONS: Final[dict[int, str]] = {
    400: "Bad request: a malformed header, code or body (see `type`)",
    401: "Authentication required, or the credentials or signature are invalid",
    403: "Not allowed in this state of the registration",
    404: "Not found (another customer's object is not found either)",
    409: "Conflicts with the current state of the resource",
    410: "Gone: the registration or link has failed for good",
    413: "The request body is larger than the cap",
    422: "The request cannot be interpreted or is refused (see `type`; `errors` for fields)",
    429: "Too many attempts; retry after `Retry-After` seconds",
    500: "Unexpected error (the log has the X-Request-ID)",
    503: "A backing service is unavailable; retry after `Retry-After` seconds",
}
_RETRY_AFTER: Final = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
}
_HEADERS: Final[dict[int, dict[str, Any]]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


class FieldError(BaseModel):
    """One invalid field of a 422 `validation-error`."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error answer carries them."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="stable URI of the problem kind (`.../problems/<slug>`)")
    title: str
    status: int
    detail: str
    instance: str = Field(description="the request path")
    errors: list[FieldError] | None = Field(None, description="422 validation-error: the fields")
    retry_after: int | None = Field(None, description="429 and 503: seconds to wait")
    dependency: str | None = Field(None, description="503: the service that is down")
    request_id: str | None = Field(None, description="the request's id (as in X-Request-ID)")
    trace_id: str | None = Field(None, description="the request's trace id, when tracing is on")


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object of a problem status."""
    answer: dict[str, Any] = {
        "description": description or DESCRIPTIONS.get(status, "Problem"),
        "content": {MEDIA_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}},
    }
    if status in _HEADERS:
        answer["headers"] = _HEADERS[status]
    return answer


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Route-specific problem statuses, for a route's `responses=`."""
    return {status: problem_response(status) for status in statuses}


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def problem_statuses(dependant: Dependant, services: Callable[..., Any]) -> set[int]:
    """The problem statuses a route can answer by what it depends on and takes."""
    found = {500}
    calls = [d.call for d in _dependants(dependant)]
    if services in calls:
        found.add(503)
    if any(isinstance(call, SecurityBase) for call in calls):
        found.add(401)
    if any(hasattr(call, ROLES_ATTRIBUTE) for call in calls):
        found.add(404)  # a staff route answers anyone without its role like an unknown route
    params = [p for d in _dependants(dependant) for p in _params(d)]
    if any(kind == "path" for kind, _ in params) or _takes_ids(dependant):
        found.add(404)
    if params or dependant.body_params:
        found.add(422)
    if dependant.body_params:
        found |= {400, 413}  # 400: a body that cannot be decoded (FastAPI's parse error)
    if (IDEMPOTENCY_HEADER, "header") in {(name, kind) for kind, name in params}:
        found |= {400, 422}
    return found


def _is_id(annotation: Any) -> bool:
    """A UUID, or an optional one."""
    return annotation is uuid.UUID or uuid.UUID in get_args(annotation)


def _takes_ids(dependant: Dependant) -> bool:
    """Whether a query parameter or a body field names an object by id (which may be unknown
    or another customer's: 404)."""
    fields = [f for d in _dependants(dependant) for f in d.query_params]
    annotations = [f.field_info.annotation for f in fields]
    for body in dependant.body_params:
        model = body.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            annotations += [f.annotation for f in model.model_fields.values()]
    return any(_is_id(a) for a in annotations)


def _params(dependant: Dependant) -> Iterator[tuple[str, str]]:
    for kind, fields in (
        ("path", dependant.path_params),
        ("query", dependant.query_params),
        ("header", dependant.header_params),
    ):
        for field in fields:
            yield kind, field.alias


def _merge(responses: dict[str, Any], status: int) -> None:
    """Add a problem status, keeping what the route declared (a description, another type)."""
    current = responses.get(str(status))
    if current is None:
        responses[str(status)] = problem_response(status)
        return
    content = current.get("content", {})
    schema_ref = content.get("application/json", {}).get("schema", {}).get("$ref")
    if schema_ref == _FASTAPI_422:  # FastAPI's default: our handler answers a Problem
        responses[str(status)] = problem_response(status)
    elif not content:  # declared with a description only
        responses[str(status)] = problem_response(status, current.get("description"))


def document_problems(doc: dict[str, Any], app: FastAPI, services: Callable[..., Any]) -> None:
    """Add every route's problem statuses and the shared schema to an OpenAPI document."""
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        item = doc["paths"].get(route.path_format or "", {})
        for method in route.methods or ():
            operation = item.get(method.lower())
            if operation is None:
                continue
            responses = operation["responses"]
            declared = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            for status in sorted(problem_statuses(route.dependant, services) | declared):
                _merge(responses, status)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template=REF)
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    text = repr(doc["paths"])
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"/{unused}'" not in text:
            schemas.pop(unused, None)


def install_problem_docs(app: FastAPI, services: Callable[..., Any]) -> None:
    """Make `app.openapi()` document the problem responses (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_problems(build(), app, services)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
