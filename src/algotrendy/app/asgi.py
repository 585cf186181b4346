"""The ASGI application: mounts the routers of the services this process hosts.

``create_app()`` reads settings from the environment; ``uvicorn --factory
algotrendy.app.asgi:create_app`` and ``algotrendy serve`` both use it.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from algotrendy import __version__
from algotrendy.app.container import Container
from algotrendy.app.logging import configure_logging
from algotrendy.app.settings import Settings, load_settings
from algotrendy.core.clock import Clock
from algotrendy.gateway import metrics, problems, routing
from algotrendy.gateway.middleware import EdgeMiddleware

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def _mount_routers(app: FastAPI, hosted: tuple[str, ...]) -> None:
    if "users" in hosted:
        from algotrendy.services.users.router import auth_router
        from algotrendy.services.users.router import router as users_router

        app.include_router(auth_router)
        app.include_router(users_router)
    if "notifications" in hosted:
        from algotrendy.services.notifications.router import router as notifications_router

        app.include_router(notifications_router)
    if "jobs" in hosted:
        from algotrendy.services.jobs.router import router as jobs_router

        app.include_router(jobs_router)
    if "marketdata" in hosted:
        from algotrendy.services.marketdata.router import router as marketdata_router

        app.include_router(marketdata_router)
    if "strategies" in hosted:
        from algotrendy.services.strategies.router import router as strategies_router

        app.include_router(strategies_router)
    if "backtest" in hosted:
        from algotrendy.services.backtest.router import router as backtest_router
        from algotrendy.services.backtest.router import strategy_router as backtest_strategy_router

        app.include_router(backtest_router)
        app.include_router(backtest_strategy_router)
    if "trading" in hosted:
        from algotrendy.services.portfolio.router import router as portfolio_router
        from algotrendy.services.risk.router import router as risk_router
        from algotrendy.services.trading.router import router as trading_router
        from algotrendy.services.trading.router import strategy_router as deploy_router

        app.include_router(portfolio_router)
        app.include_router(risk_router)
        app.include_router(trading_router)
        app.include_router(deploy_router)
    if "ml" in hosted:
        from algotrendy.services.ml.router import router as ml_router

        app.include_router(ml_router)


def _platform_routes(app: FastAPI, container: Container) -> None:
    @app.get("/health", tags=["platform"])
    async def health() -> dict[str, str]:
        """Liveness: the process is up."""
        return {"status": "healthy", "version": __version__, "timestamp": datetime.now(UTC).isoformat()}

    @app.get(
        "/ready",
        tags=["platform"],
        responses={503: problems.PROBLEM_RESPONSES[422] | {"description": "Not ready"}},
    )
    async def ready() -> Response:
        """Readiness: database, event bus and cache all answer."""
        checks = await container.readiness()
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        return problems.problem(503, detail="a dependency is unavailable", code="not_ready", checks=checks)

    @app.get("/metrics", tags=["platform"], include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    app.openapi_schema = schema
    return schema


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(level=settings.log.level, json_format=settings.log.json_format)
    container = Container.build(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await container.start()
        # Startup objects (modules, routes, settings) never die: keep them out of the
        # collector's way so full collections stay short under load.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # let what start-up allocated be collected again (tests start many apps)
            await container.stop()
            provider = getattr(_app.state, "tracer_provider", None)
            if provider is not None:
                provider.shutdown()  # flush spans and stop the exporter thread

    docs = settings.docs_enabled
    app = FastAPI(
        title="AlgoTrendy",
        version=__version__,
        description="Algorithmic trading platform API. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.container = container
    app.state.services = container.services
    app.state.authenticator = container.authenticator
    app.state.settings = settings
    problems.install(app)
    _platform_routes(app, container)
    _mount_routers(app, settings.hosted_services)
    routing.index(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(
        EdgeMiddleware,
        settings=settings.gateway,
        limiter=container.limiter,
        access_log=settings.log.access_log,
    )
    if settings.gateway.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.gateway.cors_origins,
            allow_credentials=settings.gateway.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    _tracing(app, settings)
    return app


def _tracing(app: FastAPI, settings: Settings) -> None:
    if not settings.otel.endpoint:
        return
    from algotrendy.adapters.telemetry import install_tracing

    install_tracing(
        app,
        endpoint=settings.otel.endpoint,
        service_name=settings.otel.service_name,
        sample_ratio=settings.otel.sample_ratio,
    )
