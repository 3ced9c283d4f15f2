"""The read benchmark's baseline: a bare FastAPI + asyncpg endpoint that returns one row.

`python -m bench.bare_api --dsn URL --port N` serves `GET /row` on uvicorn with the same loop and
HTTP parser as `vortex api` (uvloop, httptools), no auth, no ORM, no middleware: the ceiling a
read route can approach.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request

ROW_QUERY = "SELECT id, name, currency, posted, held FROM ledger_accounts ORDER BY id LIMIT 1"


def create_bare_app(dsn: str) -> FastAPI:
    """The baseline app: one pooled asyncpg query per request."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/row")
    async def one_row(request: Request) -> dict[str, Any]:
        """One row of ledger_accounts, as JSON."""
        async with request.app.state.pool.acquire() as connection:
            row = await connection.fetchrow(ROW_QUERY)
        return {key: str(value) for key, value in dict(row or {}).items()}

    return app


def main() -> None:
    """Serve the baseline until killed."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_api")
    parser.add_argument("--dsn", required=True, help="postgresql:// URL (asyncpg form)")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_bare_app(args.dsn),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
