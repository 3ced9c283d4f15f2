"""The bucketed route-template lookup names every request as the exhaustive search of the
OpenTelemetry FastAPI instrumentation does, for every route of the API and for misses."""

from __future__ import annotations

import re
import uuid

from opentelemetry.instrumentation.fastapi import _flatten_routes, _get_route_details

from api.app import create_app
from core.route_templates import RouteTemplates, bucket_key, route_template
from core.settings import Settings

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
MISSES = ["/", "/nope", "/api", "/api/nope", "/api/accounts/", "/api/accounts/x/y/z/w"]


def _templates(app: object) -> list[str]:
    return [str(getattr(route, "path", "")) for route in _flatten_routes(app.routes)]  # type: ignore[attr-defined]


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), template)


def test_every_request_gets_the_template_the_exhaustive_search_gives() -> None:
    app = create_app(Settings())
    templates = _templates(app)
    assert len(templates) > 50  # the whole API, not an empty app
    checked = 0
    for path in [_concrete(t) for t in templates] + MISSES:
        for method in METHODS:
            scope = {"type": "http", "path": path, "method": method, "app": app, "root_path": ""}
            assert route_template(scope, _flatten_routes) == _get_route_details(scope), (
                method,
                path,
            )
            checked += 1
    assert checked == 5 * (len(templates) + len(MISSES))


def test_a_request_tries_only_its_bucket() -> None:
    app = create_app(Settings())
    index = RouteTemplates(_flatten_routes(app.routes))
    total = len(templates := _templates(app))
    tried = index.candidates("/api/accounts/" + str(uuid.uuid4()))
    assert 0 < len(tried) < total / 4
    assert all(bucket_key(route.path) == "/api/accounts" for _, route in tried), templates


def test_bucket_keys_are_the_first_two_segments() -> None:
    assert bucket_key("/api/accounts/1/transactions") == "/api/accounts"
    assert bucket_key("/api/accounts") == "/api/accounts"
    assert bucket_key("/health") == "/health"
    assert bucket_key("/") == "/"
