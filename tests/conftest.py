"""Fixtures on real servers: PostgreSQL, Redis and NATS must answer on CI (CI=true); elsewhere their tests skip."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import pytest
import redis

from sagashop.events.streams import Streams
from sagashop.kit.settings import Settings
from tests.shop import Shop, delete_streams, start_shop, stop_shop, wait_ready
from tools.local.broker import jetstream_answers

POSTGRES_URL = os.environ.get("SAGASHOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SAGASHOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("SAGASHOP_TEST_NATS_URL", "nats://127.0.0.1:4222")
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str, remedy: str) -> NoReturn:
    """Something a test needs is not here: on CI the test fails, elsewhere it is skipped with the reason."""
    if ON_CI:
        pytest.fail(f"{reason}; CI needs it", pytrace=False)
    pytest.skip(f"{reason}; {remedy}")


def unreachable(what: str, error: Exception) -> NoReturn:
    missing(f"{what} is unreachable ({error})", "start it to run this test")


def run_aside(coro: Coroutine[Any, Any, Any]) -> Any:
    """Runs admin SQL on a loop of its own, so sync fixtures need not share the tests' loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    try:
        run_aside(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError) as e:
        unreachable(f"PostgreSQL at {POSTGRES_URL}", e)
    return POSTGRES_URL


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the server, dropped afterwards."""
    name = f"sagashop_test_{uuid.uuid4().hex[:12]}"
    run_aside(_admin(f'CREATE DATABASE "{name}"'))
    yield f"{postgres_server.rsplit('/', 1)[0]}/{name}"
    run_aside(_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_server() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except redis.RedisError as e:
        unreachable(f"Redis at {REDIS_URL}", e)
    return REDIS_URL


@pytest.fixture(scope="session")
def nats_server() -> str:
    if not run_aside(jetstream_answers(NATS_URL)):
        missing(f"NATS with JetStream at {NATS_URL} is unreachable", "start it (`nats-server -js`) to run this test")
    return NATS_URL


@pytest.fixture
async def event_streams(nats_server: str) -> AsyncIterator[Streams]:
    """Streams of the test's own on the machine's NATS, the events stream made; every one of them deleted after."""
    import nats

    made = Streams(f"t{uuid.uuid4().hex[:10]}")
    nc = await nats.connect(nats_server, connect_timeout=2)
    try:
        await nc.jetstream().add_stream(name=made.events, subjects=[f"{made.events_prefix}.>"])
    finally:
        await nc.close()
    yield made
    await delete_streams(nats_server, made.name)


@contextlib.asynccontextmanager
async def redis_scratch(url: str) -> AsyncIterator[tuple[Any, str]]:
    """An asyncio client of the real Redis and a key prefix of one test's own; its keys are deleted after."""
    from services.gateway.stores import redis_client

    client, prefix = redis_client(url), f"test:{uuid.uuid4().hex}:"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for one database kind: a SQLite data dir of its own, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    return Settings(database_url=request.getfixturevalue("postgres_database"))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """`sagashop up` on its defaults (SQLite files, in-process stores, a NATS server of its own), or on the machine's
    PostgreSQL and NATS: each way of running the shop goes through every end-to-end test."""
    database_url = nats_url = None
    if request.param == "postgres":
        request.getfixturevalue("postgres_server")
        nats_url = request.getfixturevalue("nats_server")
        name = f"sagashop_e2e_{uuid.uuid4().hex[:10]}"
        run_aside(_admin(f'CREATE DATABASE "{name}"'))
        database_url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    process, env, log = start_shop(tmp_path_factory.mktemp(f"shop-{request.param}"), database_url, nats_url)
    url = f"http://127.0.0.1:{env['SAGASHOP_GATEWAY_PORT']}"
    try:
        wait_ready(url, process, log)
        with Shop(url, env, process.pid, log) as shop:
            yield shop
    finally:
        stop_shop(process)
        if nats_url:
            run_aside(delete_streams(nats_url, env["SAGASHOP_EVENTS_NAME"]))
        if database_url:
            run_aside(_admin(f'DROP DATABASE "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)'))
