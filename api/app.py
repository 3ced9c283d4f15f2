"""FastAPI application factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from api.problems import install_problem_handlers
from api.routes import (
    accounts,
    auth,
    external_payments,
    health,
    linked_accounts,
    manual_entries,
    payment_methods,
    payments,
    processor,
    transactions,
    webhooks,
)
from api.services import Services
from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the API; connects its services at startup unless they are given (tests)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or await Services.connect(settings)
        try:
            yield
        finally:
            if owned:
                await app.state.services.close()

    app = FastAPI(
        title="VortexCore API",
        version="0.1.0",
        description="Workflow-orchestrated retail-banking backend.",
        lifespan=lifespan,
    )
    if services is not None:
        app.state.services = services  # usable without running the lifespan (ASGI tests)
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(accounts.router)
    # Before `payments`: its `/api/payments/{payment_id}` must not capture `/methods`.
    app.include_router(payment_methods.router)
    app.include_router(external_payments.router)
    app.include_router(payments.router)
    app.include_router(transactions.router)
    app.include_router(manual_entries.router)
    app.include_router(linked_accounts.router)
    app.include_router(webhooks.router)
    app.include_router(processor.router)
    return app
