"""create_app(): the routers under /v1, problem+json errors, the operations endpoints, and around them all the
middleware, outermost first: HttpMetrics > Edge (request id, security headers) > CORS > RateLimits > BodyRules,
all inside OpenTelemetry's request span."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sagashop.backends import Backends
from sagashop.kit import metrics
from sagashop.kit.settings import Settings

from . import observe, problems, security
from .body import BodyRules
from .catalog_cache import CatalogCache, MemoryGenerations, RedisGenerations
from .events import Broker
from .idempotency import Idempotency, MemoryEntries, RedisEntries
from .limits import Buckets, Limit, MemoryBuckets, RateLimits, RedisBuckets, SignInLimits
from .problems import problem
from .routes import admin, breakers, catalog, console, events, faults, orders, reports, sagas, users
from .stores import redis_client
from .tokens import Tokens

ANY_ROUTE = problems.responses(400, 413, 415, 422, 429, 503)  # what any /v1 route may answer


def create_app(settings: Settings, jwt_secret: str) -> FastAPI:
    client = redis_client(settings.redis_url) if settings.redis_url else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backends = Backends(settings, "gateway")  # one long-lived channel per backend
        app.state.broker = Broker(settings, app.state.catalog_cache)
        app.state.broker.start()
        yield
        await app.state.broker.close()
        await app.state.backends.close()
        if client is not None:
            await client.aclose()

    app = FastAPI(title="sagashop", version=settings.version, lifespan=lifespan,
                  description="Orders placed here run a checkout saga across gRPC services.",
                  # FastAPI's native telemetry would wrap every request a second time: spans come from the
                  # OpenTelemetry instrumentation and metrics from our Prometheus registry (observe.py)
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.tokens = Tokens(jwt_secret, settings.token_ttl_seconds)
    app.state.draining = False  # set once a signal asks the server to stop (main.py)
    buckets = RedisBuckets(client) if client else MemoryBuckets()
    app.state.sign_in = SignInLimits(buckets, Limit.per_minute(settings.rate_limit_sign_in_address_per_minute),
                                     Limit.per_minute(settings.rate_limit_sign_in_account_per_minute))
    app.state.idempotency = Idempotency(RedisEntries(client) if client else MemoryEntries(),
                                        settings.idempotency_ttl_seconds, settings.idempotency_wait_seconds)
    cached = RedisGenerations(client, f"sagashop:catalog:{settings.events_name}:") if client else MemoryGenerations()
    app.state.catalog_cache = CatalogCache(cached, settings.catalog_cache_seconds)
    problems.install(app)
    metrics.install(settings.model_copy(update={"metrics_port": None}))  # served on /metrics below
    for module in (users, catalog, orders, sagas, events, reports, admin, breakers,
                   *([faults] if settings.faults_enabled else [])):
        app.include_router(module.router, prefix="/v1", responses=ANY_ROUTE)
    app.include_router(console.router)
    _operations(app)
    _guard(app, settings, buckets)
    observe.install(app)
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        return app.openapi_schema or problems.as_problem_json(default_openapi())

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _guard(app: FastAPI, settings: Settings, buckets: Buckets) -> None:
    """The middleware, added innermost first."""
    app.add_middleware(BodyRules, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimits, buckets=buckets, tokens=app.state.tokens,
                       per_user=Limit(settings.rate_limit_user_per_second, settings.rate_limit_user_burst),
                       per_address=Limit(settings.rate_limit_address_per_second, settings.rate_limit_address_burst),
                       orders_per_user=Limit.per_hour(settings.rate_limit_orders_per_hour))
    security.install(app, settings)


def _operations(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", tags=["operations"], responses=problems.responses(503))
    async def readyz() -> Response:
        deps = app.state.backends.deps
        serving = await asyncio.gather(*(dep.is_serving() for dep in deps.values()))
        down = [name for name, ok in zip(deps, serving, strict=True) if not ok]
        if down:
            return problem(503, "not_ready", f"not serving: {', '.join(down)}", {"Retry-After": "1"})
        return Response('{"status":"ready"}', media_type="application/json")

    @app.get("/readyz/self", tags=["operations"], responses=problems.responses(503))
    async def readyz_self() -> Response:
        """This gateway alone: ready while it serves and is not draining, whatever its backends do. Its pods'
        readinessProbe asks this: a backend down makes /readyz answer 503 on every replica alike, and taking them
        all out of the load balancer would turn the API's 503 answers into refused connections."""
        if app.state.draining:
            return problem(503, "draining", "this gateway is shutting down", {"Retry-After": "1"})
        return Response('{"status":"ready"}', media_type="application/json")

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
