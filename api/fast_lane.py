"""The fast lane: the dashboard's two hottest reads answered without FastAPI's per-request
machinery (decision 79).

`GET /api/accounts` and the first page of `GET /api/transactions` open every dashboard. Their
FastAPI routes stay (they are the documented operations and answer every other form of the
request); a `FastLaneRoute` placed before them takes only the exact canonical request (no query
string, or only a plain `limit`) and answers it with the same checks and the same bytes: the
caller comes from `caller_from_header` (the token verified, then one Redis round trip for
revocation and the user's status), the rows from the routes' own compiled queries, the body
from `read_views`. What it skips is the dependency solving and parameter validation FastAPI
does for every request, about half the CPU of these reads. Any other query string goes to the
regular route, so bad input gets its usual problem answer. Errors raised here pass through the
app's exception handlers like any route's.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from api import read_views
from api.deps import caller_from_header, get_services
from api.routes.accounts import LIST_OPEN
from api.routes.transactions import FIRST_PAGE
from models.transactions.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Handler = Callable[[Request], Awaitable[Response]]
QueryRule = Callable[[bytes], dict[str, Any] | None]
_PLAIN_INT = re.compile(r"[1-9][0-9]{0,5}")


class FastLaneRoute(Route):
    """A GET route that matches only the query strings its rule accepts; anything else falls
    through to the regular route of the same path."""

    def __init__(self, path: str, handler: Callable[..., Awaitable[Response]], rule: QueryRule):
        self._rule = rule

        async def endpoint(request: Request) -> Response:
            return await handler(request, **request.scope["fast_lane_params"])

        super().__init__(path, endpoint, methods=["GET"], include_in_schema=False)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """FULL for a GET of this exact path with an accepted query; NONE otherwise, HEAD and
        other methods included (the regular route answers them)."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != self.path:
            return Match.NONE, {}
        params = self._rule(scope.get("query_string", b""))
        if params is None:
            return Match.NONE, {}
        match, child = super().matches(scope)
        return match, {**child, "fast_lane_params": params}


def no_query(query: bytes) -> dict[str, Any] | None:
    """Accepts only an empty query string."""
    return {} if not query else None


def plain_limit(query: bytes) -> dict[str, Any] | None:
    """Accepts no query or `limit=N` alone, N a plain integer within the page bounds."""
    if not query:
        return {"limit": DEFAULT_PAGE_SIZE}
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "limit" or not _PLAIN_INT.fullmatch(pairs[0][1]):
        return None
    limit = int(pairs[0][1])
    return {"limit": limit} if limit <= MAX_PAGE_SIZE else None


async def open_accounts(request: Request) -> Response:
    """The caller's open accounts with balances: `GET /api/accounts` without a query."""
    services = await get_services(request)
    caller = await caller_from_header(services, request.headers.get("authorization"))
    rows = await LIST_OPEN.fetch(services.read_pool, owner=caller.id)
    return read_views.json_response({"items": [read_views.account(r) for r in rows]})


async def first_transactions_page(request: Request, limit: int) -> Response:
    """The caller's newest transactions: `GET /api/transactions` with at most a `limit`."""
    services = await get_services(request)
    caller = await caller_from_header(services, request.headers.get("authorization"))
    records = await FIRST_PAGE.fetch(services.read_pool, user_id=caller.id, limit=limit + 1)
    return read_views.json_response(read_views.transaction_page(records, limit))


def fast_lane_routes() -> list[FastLaneRoute]:
    """The fast-lane routes, to be placed before the app's regular routes."""
    return [
        FastLaneRoute("/api/accounts", open_accounts, no_query),
        FastLaneRoute("/api/transactions", first_transactions_page, plain_limit),
    ]
