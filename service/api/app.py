"""The FastAPI application: ``create_app(settings)`` (JSON under /api/v1, OpenAPI at /docs,
the dashboard at /).

uvicorn --factory service.api.app:create_app    # or: paretonas serve

Every request first passes ``RequestGuard`` (body size and JSON depth limits, NUL and key-in-URL
refusals); the engine's pool is sized by settings (``PARETONAS_DB_POOL_SIZE``, ``_DB_MAX_OVERFLOW``,
``_DB_POOL_TIMEOUT_SECONDS``); a database that is away answers 503 with Retry-After.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service.api.access_log import install_access_log_redaction
from service.api.guards import RequestGuard
from service.api.metrics import HttpMetrics, make_registry
from service.api.openapi import install_openapi, operation_id
from service.api.problems import install_problem_handlers
from service.api.rendered import RenderedCache
from service.api.routes import details, export, health, jobs, metrics, schedules, trials
from service.dashboard.install import install_dashboard
from service.db.engine import make_engine
from service.settings import Settings, get_settings

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app on ``settings`` (default: the environment's); one engine per app."""
    settings = settings or get_settings()
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            engine.dispose()

    # fastapi-offline: /docs and /redoc load Swagger UI and ReDoc from its package, not a CDN.
    app = FastAPIOffline(
        static_url="/assets/docs",
        title="ParetoNAS",
        version="0.1.0",
        description="Search for parameter-efficient networks: Pareto fronts of accuracy "
        "against parameters over full, bilinear and low-rank layers. Every error is "
        "application/problem+json (RFC 9457).",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.retry_after_seconds = settings.retry_after_seconds
    app.state.rendered = RenderedCache(settings.response_cache_mb * 2**20)
    rendered, http_registry = make_registry(
        engine, stale_after_seconds=settings.worker_stale_seconds
    )
    app.state.metrics_registry = rendered
    app.add_middleware(HttpMetrics, registry=http_registry)
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(jobs.router, prefix=API_PREFIX)
    app.include_router(trials.router, prefix=API_PREFIX)
    app.include_router(schedules.router, prefix=API_PREFIX)
    app.include_router(details.router, prefix=API_PREFIX)
    app.include_router(export.router, prefix=API_PREFIX)
    install_dashboard(app)
    install_openapi(app, api_prefix=API_PREFIX)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
    )
    install_access_log_redaction()
    return app
