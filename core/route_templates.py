"""The route template of a request (`GET /api/accounts/{account_id}`) found among a handful of
candidate routes instead of all of them.

OpenTelemetry's FastAPI instrumentation names each server span by trying every route of the app
in turn (one regex match each) before the request is routed; with this API's hundred-odd routes
that was about 1 ms of CPU per request, most of what tracing cost the API (decision 78).
`RouteTemplates` buckets the routes once by their first two path segments, so a request tries
only its bucket (and the few routes with a parameter in those segments), in the app's order and
with the same full-then-partial match rule, so the answer is the same as the exhaustive one.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any

from starlette.routing import Host, Match, Mount, Route

Scope = MutableMapping[str, Any]


def bucket_key(path: str) -> str:
    """The first two segments of a path: `/api/accounts/1/x` -> `/api/accounts`."""
    return "/".join(path.split("/", 3)[:3])


class RouteTemplates:
    """The routes of one app, bucketed for the lookup of a request's route template."""

    def __init__(self, routes: Iterable[Any]) -> None:
        self._buckets: dict[str, list[tuple[int, Any]]] = {}
        self._anywhere: list[tuple[int, Any]] = []  # mounts, parameters in the first segments
        for order, route in enumerate(routes):
            path = getattr(route, "path", None)
            # FastAPI wraps each route in a context; what it matches with is underneath.
            underneath = getattr(route, "_effective_route", route)
            prefix_only = isinstance(underneath, Mount | Host)  # matches more than its path
            exact = isinstance(path, str) and path.startswith("/") and not prefix_only
            if exact and isinstance(path, str) and "{" not in bucket_key(path):
                self._buckets.setdefault(bucket_key(path), []).append((order, route))
            else:
                self._anywhere.append((order, route))

    def candidates(self, path: str) -> Sequence[tuple[int, Any]]:
        """The routes that could match `path`, in the app's order."""
        bucket = self._buckets.get(bucket_key(path), [])
        if not self._anywhere:
            return bucket
        return sorted([*bucket, *self._anywhere], key=lambda pair: pair[0])

    def template(self, scope: Scope) -> str | None:
        """The template of the route that will answer `scope` (or the last partial match: the
        path matched but not the method), None when no route does."""
        found: str | None = None
        for _, route in self.candidates(scope["path"]):
            # As the instrumentation does: a plain Route's own rule, whatever a subclass adds.
            match, _ = (
                Route.matches(route, scope) if isinstance(route, Route) else route.matches(scope)
            )
            if match == Match.FULL:
                return str(getattr(route, "path", scope.get("path")))
            if match == Match.PARTIAL:
                found = route.path
        return found


_BY_APP: weakref.WeakKeyDictionary[Any, RouteTemplates] = weakref.WeakKeyDictionary()


def route_template(scope: Scope, flatten: Any = iter) -> str | None:
    """The route template for a request to `scope["app"]`, its routes bucketed on first use
    (`flatten` turns the app's routes into matchable ones, included routers opened)."""
    app = scope["app"]
    templates = _BY_APP.get(app)
    if templates is None:
        templates = _BY_APP[app] = RouteTemplates(flatten(app.routes))
    return templates.template(scope)
