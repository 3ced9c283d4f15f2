"""FastAPI application factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import get_services
from api.fast_lane import fast_lane_routes
from api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from api.openapi_problems import install_problem_docs
from api.problems import install_problem_handlers
from api.routes import (
    accounts,
    ai,
    ai_insights,
    analytics,
    auth,
    compliance,
    external_payments,
    health,
    linked_accounts,
    manual_entries,
    notifications,
    payment_methods,
    payments,
    privacy,
    processor,
    reports,
    risk,
    security,
    self_service,
    staff_migration,
    staff_ops,
    staff_support,
    transactions,
    webhooks,
)
from api.services import Services
from api.staff import declare_roles
from api.ws import endpoint as ws_endpoint
from api.ws.hub import Hub
from core.settings import Settings, get_settings
from core.tracing import app_telemetry


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the API; connects its services at startup unless they are given (tests)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or await Services.connect(settings)
        # The WebSocket hub of this process: one stream reader, one revocation listener.
        app.state.ws_hub = Hub(settings)
        await app.state.ws_hub.start()
        try:
            yield
        finally:
            await app.state.ws_hub.stop()
            if owned:
                await app.state.services.close()

    app = FastAPI(
        title="VortexCore API",
        version="0.1.0",
        description="Workflow-orchestrated retail-banking backend.",
        lifespan=lifespan,
        telemetry=app_telemetry(),  # its server span per request, when tracing is on
    )
    if services is not None:
        app.state.services = services  # usable without running the lifespan (ASGI tests)
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    for router in (
        health.router,
        auth.router,
        accounts.router,
        # Before `payments`: its `/api/payments/{payment_id}` must not capture `/methods`.
        payment_methods.router,
        external_payments.router,
        payments.router,
        transactions.router,
        manual_entries.router,
        linked_accounts.router,
        webhooks.router,
        processor.router,
        notifications.router,
        self_service.router,
        security.router,
        risk.router,
        compliance.router,
        privacy.router,
        staff_ops.router,
        staff_support.router,
        staff_migration.router,
        analytics.router,
        reports.router,
        ai.router,
        ai_insights.router,
    ):
        declare_roles(router)  # each operation's `x-roles` in the OpenAPI document
        app.include_router(router)
    # The WebSocket route is not in the OpenAPI document (no HTTP operation, no roles).
    app.include_router(ws_endpoint.router)
    # The dashboard's canonical hot reads, ahead of their documented routes (api/fast_lane.py).
    app.router.routes[0:0] = fast_lane_routes()
    install_problem_docs(app, get_services)
    return app
