"""Starts the floor's parts (each `python -m tools.floor PART CONFIG LOG_DIR`), drives them as `bench` drives
the shop, reports what they wrote per checkout, and removes them, their schema, files and key."""

import asyncio
import json
import signal
import sqlite3
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from sagashop.kit.db import server_url
from sagashop.kit.settings import Settings

from ..bench import Result, drive, table, via_gateway
from ..local.parts import free_ports, start
from ..processes import cpu_seconds
from .parts import PARTS, TABLE_OF

PREFIX = "sagashop_floor_"  # each run's PostgreSQL schema and Redis key: its own, removed after it
WARM_UP = 50  # checkouts one at a time before the measured ones: connections opened, code paths warm


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


