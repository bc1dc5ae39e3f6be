"""The floor's bare parts: what each process serves, its table, and the calls and statements of a checkout."""

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import grpc
import redis.asyncio as aioredis

from sagashop.kit.db import SQLITE_PRAGMAS
from sagashop.kit.status import ServerContext

PARTS = ("order", "inventory", "payment", "shipping", "orchestrator", "gateway")
TABLE_OF = {"orchestrator": "saga", "order": "order", "inventory": "inventory", "payment": "payment",
            "shipping": "shipping"}  # each part's table, in a database of its own (PostgreSQL: the run's schema)
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
AFTER_TOGETHER = (("payment", "Charge"), ("inventory", "CommitStock"), ("shipping", "CreateShipment"),
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


async def serve_part(part: str, config: dict[str, Any]) -> None:
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


