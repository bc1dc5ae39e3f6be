"""`sagashop floor`: what the shop's parts allow on this machine, the yardstick for `sagashop bench`.

It starts the shop's topology bare: a FastAPI gateway under uvicorn, an orchestrator and four services over
grpc.aio, each a process of its own with a table of its own (PostgreSQL through asyncpg at SAGASHOP_DATABASE_URL,
or SQLite files on a database thread, as the shop's parts use them), and Redis at SAGASHOP_REDIS_URL if set. Each
checkout makes the shop's calls, statements and round trips, and nothing else:

- the gateway: the rate limiter's one Redis call, the body validated by a pydantic model, StartCheckout;
- the orchestrator: ListProducts; the saga log's 6 writes (the saga created with its first stage, then 5 moves)
  around CreateOrder and ReserveStock at the same time, Charge, CreateShipment, CommitStock and ApproveOrder;
- the services' 8 statements: inventory 3 (prices, reservation, commit), order 3 (creation; a read and an update
  to approve), payment 1, shipping 1.

No protobuf, validation of the domain, idempotency, breakers, retries, deadlines, spans, metrics or fault rules:
the shop's `bench` figures over the floor's, taken the same hour, are what the shop's own code costs."""

import asyncio
import json
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import psutil
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from sagashop.kit.db import SQLITE_PRAGMAS, server_url
from sagashop.kit.settings import Settings
from sagashop.kit.status import ServerContext

from .bench import Result, drive, table, via_gateway
from .local.parts import free_ports, start
from .processes import cpu_seconds

PREFIX = "sagashop_floor_"  # each run's PostgreSQL schema and Redis key: its own, removed after it
PARTS = ("order", "inventory", "payment", "shipping", "orchestrator", "gateway")
TABLE_OF = {"orchestrator": "saga", "order": "order", "inventory": "inventory", "payment": "payment",
            "shipping": "shipping"}  # each part's table, in a database of its own (PostgreSQL: the run's schema)
WARM_UP = 50  # checkouts one at a time before the measured ones: connections opened, code paths warm
REPLY = bytes(160)  # about the size of a step's reply
INSERT = "INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING RETURNING k"
READ = "SELECT k, v, n FROM {t} WHERE k = $1"
UPDATE = "UPDATE {t} SET v = $2, n = n + 1 WHERE k = $1 RETURNING n"
# each service method's statements, in the shop's round trips on PostgreSQL
METHODS: dict[str, dict[str, tuple[str, ...]]] = {
    "inventory": {"ListProducts": (READ,), "ReserveStock": (INSERT,), "CommitStock": (UPDATE,)},
    "order": {"CreateOrder": (INSERT,), "ApproveOrder": (READ, UPDATE)},
    "payment": {"Charge": (INSERT,)},
    "shipping": {"CreateShipment": (INSERT,)},
}
AFTER_TOGETHER = (("payment", "Charge"), ("shipping", "CreateShipment"), ("inventory", "CommitStock"),
                  ("order", "ApproveOrder"))


def _raw(data: bytes) -> bytes:
    return data


class Table:
    """A part's table: one statement a round trip, on a pool of asyncpg connections or on SQLite's thread."""

    def __init__(self, name: str, database: str, pool_size: int) -> None:
        self.name, self.database, self.pool_size = name, database, pool_size
        self.pool: Any = None
        self.thread: ThreadPoolExecutor | None = None
        self.sqlite: sqlite3.Connection | None = None

    async def open(self) -> "Table":
        if self.database.startswith("postgresql"):
            # the run's schema is in the URL (search_path); all the pool's connections open now, not while measured
            self.pool = await asyncpg.create_pool(self.database, min_size=self.pool_size,
                                                  max_size=self.pool_size + self.pool_size // 2)
        else:
            self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-db")
            self.sqlite = sqlite3.connect(self.database, isolation_level=None, check_same_thread=False)
            for pragma in SQLITE_PRAGMAS:  # as the shop's connections
                self.sqlite.execute(f"PRAGMA {pragma}")
        return self

    async def run(self, sql: str, key: str) -> None:
        statement = sql.format(t=f'"{self.name}"')
        parameters = (key,) if sql == READ else (key, "v" * 64)
        if self.pool is not None:
            async with self.pool.acquire() as conn:
                await conn.fetch(statement, *parameters)
            return
        sqlite = self.sqlite
        assert sqlite is not None
        await asyncio.get_running_loop().run_in_executor(
            self.thread, lambda: sqlite.execute(statement.replace("$", "?"), parameters).fetchall())


async def _serve_part(part: str, config: dict[str, Any]) -> None:
    """Runs one part of the floor until it is terminated."""
    if part == "gateway":
        import uvicorn

        app = _gateway(f"127.0.0.1:{config['ports']['orchestrator']}", config["redis"], f"{config['name']}:requests")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config["ports"]["gateway"],
                                               log_config=None, access_log=False))
        await server.serve()
        return
    table = await Table(TABLE_OF[part], config["databases"][part], config["pool"]).open()
    if part == "orchestrator":
        handlers = {"StartCheckout": _checkout(table, config["ports"])}
    else:
        handlers = {method: _service_method(table, statements) for method, statements in METHODS[part].items()}
    rpc = grpc.aio.server()
    rpc.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(f"floor.{part}", {
        method: grpc.unary_unary_rpc_method_handler(handler, request_deserializer=_raw, response_serializer=_raw)
        for method, handler in handlers.items()})])
    rpc.add_insecure_port(f"127.0.0.1:{config['ports'][part]}")
    await rpc.start()
    await rpc.wait_for_termination()


Handler = Callable[[bytes, ServerContext], Awaitable[bytes]]


def _service_method(table: Table, statements: tuple[str, ...]) -> Handler:
    async def handle(request: bytes, context: ServerContext) -> bytes:
        key = request[:32].decode()
        for sql in statements:
            await table.run(sql, key)
        return REPLY

    return handle


def _checkout(saga: Table, ports: dict[str, int]) -> Handler:
    channels = {part: grpc.aio.insecure_channel(f"127.0.0.1:{ports[part]}") for part in METHODS}
    call = {(part, method): channels[part].unary_unary(f"/floor.{part}/{method}", request_serializer=_raw,
                                                       response_deserializer=_raw)
            for part, methods in METHODS.items() for method in methods}

    async def checkout(request: bytes, context: ServerContext) -> bytes:
        key = request[:32].decode()
        await call["inventory", "ListProducts"](request)
        await saga.run(INSERT, key)  # created with its first stage's starts
        await asyncio.gather(call["order", "CreateOrder"](request), call["inventory", "ReserveStock"](request))
        for step in AFTER_TOGETHER:
            await saga.run(UPDATE, key)  # the last stage's outcomes and this step's start
            await call[step](request)
        await saga.run(UPDATE, key)  # the saga's end
        return REPLY

    return checkout


def _gateway(orchestrator: str, redis_url: str | None, counter: str) -> Any:
    from fastapi import FastAPI, Request
    from pydantic import BaseModel, Field

    class Item(BaseModel):
        sku: str
        quantity: int = Field(gt=0)

    class Address(BaseModel):
        name: str
        line1: str
        city: str
        postal_code: str
        country: str

    class Order(BaseModel):
        items: list[Item]
        payment_token: str
        shipping_address: Address

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(orchestrator)
        app.state.start = channel.unary_unary("/floor.orchestrator/StartCheckout", request_serializer=_raw,
                                              response_deserializer=_raw)
        app.state.redis = aioredis.Redis.from_url(redis_url) if redis_url else None
        yield
        await channel.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/orders", status_code=201)
    async def place(order: Order, request: Request) -> dict[str, str]:
        if request.app.state.redis is not None:  # the shop's rate limiter: one Redis call per request
            await request.app.state.redis.incr(counter)
        order_id = uuid.uuid4().hex
        await request.app.state.start(order_id.encode() + order.model_dump_json().encode())
        return {"id": order_id, "status": "APPROVED"}

    return app


class FloorFailed(Exception):
    """A part of the floor did not start or did not answer."""


FAILURES = (FloorFailed, OSError, asyncpg.PostgresError, aioredis.RedisError)  # what `sagashop floor` reports


@asynccontextmanager
async def _databases(settings: Settings, name: str) -> AsyncIterator[dict[str, str]]:
    """Each part's database with its table (on PostgreSQL in the run's schema `name`); removed after."""
    if settings.database_url:
        url = make_url(server_url(settings.database_url)).set(drivername="postgresql")
        conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            await conn.execute(f"CREATE SCHEMA {name}")
            for table in TABLE_OF.values():
                await conn.execute(f'CREATE TABLE {name}."{table}" (k text PRIMARY KEY, v text, n int DEFAULT 0)')
            # asyncpg takes the URL's other parameters as the session's settings
            yield {part: url.update_query_dict({"search_path": name}).render_as_string(hide_password=False)
                   for part in TABLE_OF}
        finally:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            await conn.close()
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="floor-", dir=settings.data_dir) as folder:  # the shop's disk
        files = {part: str(Path(folder) / f"{part}.db") for part in TABLE_OF}
        for part, name in TABLE_OF.items():
            with sqlite3.connect(files[part]) as db:
                db.execute(f'CREATE TABLE "{name}" (k text PRIMARY KEY, v text, n int DEFAULT 0)')
        yield files


async def _writes(databases: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Rows and updates so far in each table."""
    counted = {}
    for part, name in TABLE_OF.items():
        sql = f'SELECT count(*), coalesce(sum(n), 0) FROM "{name}"'
        if databases[part].startswith("postgresql"):
            conn = await asyncpg.connect(databases[part])
            try:
                counted[name] = tuple(await conn.fetchrow(sql))
            finally:
                await conn.close()
        else:
            with sqlite3.connect(databases[part]) as db:
                counted[name] = tuple(db.execute(sql).fetchone())
    return counted


@asynccontextmanager
async def _parts(config: dict[str, Any], log_dir: Path) -> AsyncIterator[dict[str, psutil.Process]]:
    """The floor's processes, started and answering; terminated after."""
    started: dict[str, asyncio.subprocess.Process] = {}
    try:
        for part in PARTS:  # each part logs to log_dir/PART.log
            started[part] = await start(part, json.dumps(config), str(log_dir), program=("tools.floor",),
                                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        for part, process in started.items():
            await _answering(part, process, config["ports"][part], log_dir / f"{part}.log")
        yield {part: psutil.Process(process.pid) for part, process in started.items()}
    finally:
        for process in started.values():
            if process.returncode is None:
                process.terminate()
        for process in started.values():
            await process.wait()


async def _answering(part: str, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise FloorFailed(f"the floor's {part} exited: {await _tail(log, 1500)}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise FloorFailed(f"the floor's {part} did not listen on port {port} within 60 s")


async def _tail(log: Path, chars: int) -> str:
    """The end of a part's log ("" if it wrote none)."""
    try:
        return (await asyncio.to_thread(log.read_text))[-chars:]
    except FileNotFoundError:
        return ""


async def run(settings: Settings, checkouts: int, concurrency: int,
              rate: float | None) -> tuple[Result, dict[str, Any]]:
    """Starts the floor, drives it as `bench` drives the shop, stops it; the figures and what was written per
    checkout (rows and updates by table, Redis calls). SIGINT or SIGTERM stops it early (CancelledError), its
    processes, schema, files and key removed on the way out."""
    loop, this = asyncio.get_running_loop(), asyncio.current_task()
    assert this is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, this.cancel)
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    counter = RequestCount(settings.redis_url, f"{name}:requests")
    async with _databases(settings, name) as databases, counter:
        ports = dict(zip(PARTS, free_ports(len(PARTS)), strict=True))
        config: dict[str, Any] = {"name": name, "ports": ports, "databases": databases,
                  "redis": settings.redis_url, "pool": settings.database_pool_size}
        with tempfile.TemporaryDirectory(prefix="sagashop-floor-logs-") as logs:
            async with _parts(config, Path(logs)) as processes, aiohttp.ClientSession(
                    base_url=f"http://127.0.0.1:{config['ports']['gateway']}",
                    timeout=aiohttp.ClientTimeout(total=60),
                    connector=aiohttp.TCPConnector(limit=concurrency + 4)) as http:
                place = via_gateway(http, "FLOOR-1")
                users: list[dict[str, Any]] = [{"headers": {}}] * concurrency
                await drive(place, users, min(WARM_UP, checkouts), 1, None)
                before, cpu, requests = await _writes(databases), cpu_seconds(processes), await counter.value()
                result, _ = await drive(place, users, checkouts, concurrency, rate)
                used, after = cpu_seconds(processes), await _writes(databases)
                requests = await counter.value() - requests
                if set(result.outcomes) != {"APPROVED"}:
                    ends = [f"{part}: {await _tail(Path(logs) / f'{part}.log', 300)}" for part in PARTS]
                    raise FloorFailed(f"the floor answered {dict(result.outcomes)}; its logs end: {' | '.join(ends)}")
    result.cpu_ms = {part: (used[part] - cpu[part]) * 1000 / checkouts for part in used if part in cpu}
    per_checkout = {t: {"rows": (after[t][0] - before[t][0]) / checkouts,
                        "updates": (after[t][1] - before[t][1]) / checkouts} for t in after}  # by table
    return result, {"writes_per_checkout": per_checkout, "redis_calls_per_checkout": requests / checkouts}


class RequestCount:
    """The requests the floor's gateway counted in Redis (none without Redis); the key is deleted on leaving."""

    def __init__(self, url: str | None, key: str) -> None:
        self.key = key
        self.redis = None if url is None else aioredis.Redis.from_url(url)

    async def value(self) -> int:
        return 0 if self.redis is None else int(await self.redis.get(self.key) or 0)

    async def __aenter__(self) -> "RequestCount":
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.redis is not None:
            await self.redis.delete(self.key)
            await self.redis.aclose()


def report(result: Result, done: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(result.summary() | done, indent=2)
    writes = ", ".join(f"{name} {w['rows']:g} + {w['updates']:g}" for name, w in done["writes_per_checkout"].items())
    return "\n".join([table(result), f"rows + updates per checkout: {writes}; Redis calls per checkout: "
                                     f"{done['redis_calls_per_checkout']:g}"])


if __name__ == "__main__":  # one part of the floor: python -m tools.floor PART CONFIG LOG_DIR
    import logging

    import uvloop

    logging.basicConfig(filename=Path(sys.argv[3]) / f"{sys.argv[1]}.log", level=logging.WARNING)
    try:
        uvloop.run(_serve_part(sys.argv[1], json.loads(sys.argv[2])))
    except Exception:
        logging.exception("the floor's %s failed", sys.argv[1])
        raise
