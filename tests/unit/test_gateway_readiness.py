"""GET /readyz/self tells whether this gateway can take requests, apart from its backends (GET /readyz)."""

import signal
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from sagashop.kit.settings import SERVICES, Settings
from services.gateway.app import create_app
from services.gateway.main import Server
from tools.local.parts import free_ports


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A gateway whose backends all point at ports nothing listens on: every backend is down."""
    ports = dict(zip((f"{s}_port" for s in SERVICES), free_ports(len(SERVICES)), strict=True))
    app = create_app(Settings(redis_url=None, **ports), "a-test-secret")  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield app, client


async def test_the_gateway_is_ready_itself_while_its_backends_are_down(gateway):
    _, client = gateway
    shop = await client.get("/readyz")
    assert shop.status_code == 503
    assert "not serving: user" in shop.json()["detail"]
    alone = await client.get("/readyz/self")
    assert (alone.status_code, alone.json()) == (200, {"status": "ready"})


async def test_the_gateway_is_not_ready_once_a_signal_asks_it_to_stop(gateway):
    app, client = gateway
    Server(uvicorn.Config(app), app).handle_exit(signal.SIGTERM, None)
    answer = await client.get("/readyz/self")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("draining")
