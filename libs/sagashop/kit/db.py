"""One database per service: a SQLite file under the data dir, or a schema of its own on a PostgreSQL server.

The schema is versioned with alembic: each service keeps its revisions in `services/<name>/migrations/`, and
`database()` upgrades to the newest before the service answers a call.
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import sqlalchemy
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import telemetry
from .settings import Settings

SERVICES_DIR = Path(__file__).resolve().parents[3] / "services"
ENV_DIR = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")


def server_url(url: str) -> str:
    """Accept `postgresql://...` as users write it; SQLAlchemy needs the asyncpg driver named."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def engine_for(settings: Settings, service: str) -> AsyncEngine:
    if settings.database_url:
        return create_async_engine(
            server_url(settings.database_url),
            pool_size=16,  # kept open: a connection made per call beyond these (overflow) costs the server a
            max_overflow=8,  # process start; 16 covers a part's 16 concurrent calls, 7 parts stay within 100
            pool_recycle=1800,  # no ping per checkout: a connection the server dropped fails one call, which is
            # answered UNAVAILABLE (interceptors.py) and retried by its caller on a fresh connection
            connect_args={"server_settings": {"search_path": service}},
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(f"sqlite+aiosqlite:///{settings.data_dir / service}.db", pool_size=5)
    _serialize_sqlite_writers(engine.sync_engine)
    return engine


def _serialize_sqlite_writers(engine: Engine) -> None:
    """WAL + BEGIN IMMEDIATE: a transaction takes the write lock when it starts, so two writers queue (for up
    to the busy timeout) instead of one failing with 'database is locked' when it upgrades a read lock."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":  # see autocommit()
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class SqliteWriter:
    """Runs a unit of work on a SQLite file whole on one worker thread, with the synchronous driver: one hand-off
    between the event loop and a thread per transaction. Through aiosqlite each statement, and BEGIN and COMMIT,
    is a hand-off of its own (about three per statement), which made a saga-log write cost several times its SQL.
    Its writes queue with every other writer of the file as any two SQLite writers do (BEGIN IMMEDIATE)."""

    def __init__(self, engine: AsyncEngine) -> None:
        # looked up at call time: once statements are traced (telemetry.trace_statements), engines made after are too
        self.engine = sqlalchemy.create_engine(engine.url.set(drivername="sqlite"), pool_size=1)
        _serialize_sqlite_writers(self.engine)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

    async def run(self, work: Callable[[Connection], T]) -> T:
        """`work` in one transaction on the writer's thread, in the caller's context (its trace, its logs)."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.thread, context.run, self._transaction, work)

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return work(conn)

    def close(self) -> None:
        self.thread.shutdown()
        self.engine.dispose()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The engine for reads, and for writes of one statement: no transaction around them. On PostgreSQL that saves
    the BEGIN and COMMIT (or ROLLBACK) round trips, on SQLite the write lock a read would otherwise take."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def database(settings: Settings, service: str) -> AsyncEngine:
    """The service's engine, its schema created if missing and migrated to the newest revision."""
    engine = engine_for(settings, service)
    telemetry.trace_statements(engine)
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # one migrator at a time when several replicas start together
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"sagashop:{service}"})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service}"'))
        await conn.run_sync(_upgrade, service)
    return engine


def _upgrade(connection: Connection, service: str) -> None:
    config = Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(ENV_DIR))
    config.set_main_option("version_locations", str(SERVICES_DIR / service / "migrations"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = service if connection.dialect.name == "postgresql" else None
    command.upgrade(config, "head")


async def transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]], *, tries: int = 3) -> T:
    """Runs `work` in one transaction. Two requests with one idempotency key can both find no record and both
    insert one: the loser's transaction rolls back on the unique key and runs again, now finding the winner's."""
    for attempt in range(tries):
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except IntegrityError:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")
