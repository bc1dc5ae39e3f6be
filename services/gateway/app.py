"""create_app(): the routers under /v1, problem+json errors, and the operations endpoints."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sagashop.backends import Backends
from sagashop.kit import metrics
from sagashop.kit.settings import Settings

from . import problems
from .problems import problem
from .routes import admin, breakers, catalog, faults, orders, sagas, users
from .tokens import Tokens


def create_app(settings: Settings, jwt_secret: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = Backends(settings)  # one long-lived channel per backend
        app.state.tokens = Tokens(jwt_secret, settings.token_ttl_seconds)
        yield
        await app.state.backends.close()

    app = FastAPI(title="sagashop", version=settings.version, lifespan=lifespan,
                  description="Orders placed here run a checkout saga across gRPC services.")
    problems.install(app)
    metrics.install(settings.model_copy(update={"metrics_port": None}))  # served on /metrics below
    for module in (users, catalog, orders, sagas, admin, breakers):
        app.include_router(module.router, prefix="/v1")
    if settings.faults_enabled:
        app.include_router(faults.router, prefix="/v1")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "a backend is not serving"}})
    async def readyz() -> Response:
        deps = app.state.backends.deps
        serving = await asyncio.gather(*(dep.is_serving() for dep in deps.values()))
        down = [name for name, ok in zip(deps, serving, strict=True) if not ok]
        if down:
            return problem(503, "not_ready", f"not serving: {', '.join(down)}", {"Retry-After": "1"})
        return Response('{"status":"ready"}', media_type="application/json")

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
