"""Servicers behind a real gRPC server on a free loopback port, called through a real channel."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sagashop.kit.callers import Callers
from sagashop.kit.db import PORTABLE_ONLY, Database, database
from sagashop.kit.grpcclient import Dependency
from sagashop.kit.grpcserver import start
from sagashop.kit.settings import Settings

SECRET = "integration-" + "s" * 32  # the servers' and their test client's internal secret


@pytest.fixture
async def grpc_service(settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    """`await grpc_service("inventory", add_fn, Servicer, Stub, full_name)` -> a Dependency on that service,
    its servicer given the service's own migrated database (`portable_only=True`: see forms.py)."""
    started: list[Any] = []

    async def make(service: str, add_fn: Any, servicer_cls: Any, stub_cls: Any, name: str, *,
                   portable_only: bool = False) -> Dependency:
        db = await database(settings, service)
        db.engine.update_execution_options(**{PORTABLE_ONLY: portable_only})
        server, port, _ = await start((add_fn, servicer_cls(db), name), host="127.0.0.1", port=0,
                                      served_by=f"{service}@test", callers=Callers(SECRET))
        client = Dependency(service, f"127.0.0.1:{port}", stub_cls, caller="test", secret=SECRET)
        started.append((server, db, client))
        return client

    yield make
    for server, db, client in started:
        await client.close()
        await server.stop(0)
        await db.dispose()


@pytest.fixture
async def open_db(settings: Settings, portable_only: bool) -> AsyncIterator[Callable[[str], Any]]:
    """`await open_db("payment")` -> the service's own migrated database, with only the portable statement forms
    when the test is parametrized so (`portable_only`, see forms.py); disposed of after the test."""
    opened: list[Database] = []

    async def make(service: str) -> Database:
        db = await database(settings, service)
        db.engine.update_execution_options(**{PORTABLE_ONLY: portable_only})
        opened.append(db)
        return db

    yield make
    for db in opened:
        await db.dispose()
