"""One database per service: a SQLite file under the data dir, or a schema of its own on a PostgreSQL server.

The schema is versioned with alembic: each service keeps its revisions in `services/<name>/migrations/`, and
`database()` upgrades to the newest before the service answers a call.

A service's code reaches its database one way: a unit of work is a plain function over a SQLAlchemy Connection
(the repositories are synchronous), and `Database` runs it whole, in one transaction or in autocommit (the pool's
connections are in autocommit; a transaction is begun and ended in SQL around the unit). On
PostgreSQL it runs on the engine's synchronous face in one greenlet that awaits asyncpg (what SQLAlchemy's asyncio
extension does under its AsyncConnection, whose own calls would each take a greenlet of their own: a
one-statement unit cost 0.42-0.46 ms of CPU that way, 0.26-0.30 ms in one); on SQLite on a worker thread
with the standard sqlite3 driver, one hand-off between the event loop and that thread per unit (through aiosqlite
each statement, BEGIN and COMMIT was a hand-off of its own, about three per statement).
"""

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from . import telemetry
from .settings import Settings

SERVICES_DIR = Path(__file__).resolve().parents[3] / "services"
ENV_DIR = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")
BEGIN = {"postgresql": "BEGIN", "sqlite": "BEGIN IMMEDIATE"}  # how a unit of work's transaction starts
Work = Callable[[Connection], T]
SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON")  # each connection


def server_url(url: str) -> str:
    """Accept `postgresql://...` as users write it; SQLAlchemy needs the asyncpg driver named."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """A service's database: `transaction(work)` and `autocommit(work)` run a unit of work whole."""

    def __init__(self, settings: Settings, service: str) -> None:
        self.server: AsyncEngine | None = None  # PostgreSQL
        self.thread: ThreadPoolExecutor | None = None  # SQLite
        if settings.database_url:
            self.server = create_async_engine(
                server_url(settings.database_url),
                pool_size=settings.database_pool_size,  # kept open: a connection made per call beyond these
                max_overflow=settings.database_pool_size // 2,  # (overflow) costs the server a process start
                pool_recycle=1800,  # no ping per call: a connection the server dropped fails one call, which is
                # answered UNAVAILABLE (interceptors.py) and retried by its caller on a fresh connection
                connect_args={"server_settings": {"search_path": service}},
                isolation_level="AUTOCOMMIT", pool_reset_on_return=None,  # we begin and end transactions (_here)
            )
            self.engine = self.server.sync_engine
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(f"sqlite:///{settings.data_dir / service}.db", pool_size=1, max_overflow=0)
            _serialize_sqlite_writers(self.engine)
            self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"{service}-db")
        self.dialect = self.engine.dialect.name
        self.begin = BEGIN[self.dialect]

    async def transaction(self, work: Work[T], *, tries: int = 3) -> T:
        """Runs `work` in one transaction. Two requests with one idempotency key can both find no record and both
        insert one: the loser's transaction rolls back on the unique key and runs again, now finding the
        winner's."""
        for attempt in range(tries):
            try:
                return await self._run(work, autocommit=False)
            except IntegrityError:
                if attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    async def autocommit(self, work: Work[T]) -> T:
        """Runs `work` with no transaction around it: for reads, and for writes of one statement. On PostgreSQL
        that saves the BEGIN and COMMIT round trips, on SQLite the write lock a read would otherwise take."""
        return await self._run(work, autocommit=True)

    async def atomic(self, work: Work[T]) -> T:
        """Runs `work` whose writes are one statement on PostgreSQL (data-modifying CTEs) and several on SQLite:
        in autocommit there, as one statement is atomic on its own, in a transaction here."""
        return await self._run(work, autocommit=self.dialect == "postgresql")

    async def _run(self, work: Work[T], *, autocommit: bool) -> T:
        if self.server is not None:  # the sync engine in one greenlet, where it awaits asyncpg
            return await greenlet_spawn(self._here, work, autocommit)
        # in the caller's context (its trace, its logs)
        return await asyncio.get_running_loop().run_in_executor(
            self.thread, contextvars.copy_context().run, self._here, work, autocommit)

    def _here(self, work: Work[T], autocommit: bool) -> T:
        """Runs `work` on a connection of the pool. Connections are in autocommit and a transaction is begun and
        ended here, in SQL: an autocommit unit then costs no switch of the connection's mode at checkout and
        back at checkin (0.20-0.21 -> 0.15-0.16 ms of CPU for a one-statement unit on PostgreSQL)."""
        with self.engine.connect() as conn:
            if autocommit:
                return work(conn)
            conn.exec_driver_sql(self.begin)
            try:
                done = work(conn)
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                _roll_back(conn)
                raise
            return done

    async def dispose(self) -> None:
        if self.server is not None:
            await self.server.dispose()
        else:  # its connection belongs to its thread
            assert self.thread is not None
            await asyncio.get_running_loop().run_in_executor(self.thread, self.engine.dispose)
            self.thread.shutdown()


def _roll_back(conn: Connection) -> None:
    """Ends a failed transaction; a connection that cannot is dropped, never returned to the pool mid-way."""
    try:
        conn.exec_driver_sql("ROLLBACK")
    except BaseException:
        conn.invalidate()
        raise


def insert_if_absent(table: sa.Table) -> dict[str, sa.Insert]:
    """By dialect: an insert into `table` that does nothing if a row with its primary key is there already, and
    returns the key of the row it inserted (no row: a repeat). One statement makes an idempotent write one round
    trip; a repeat reads the first row after."""
    key = list(table.primary_key.columns)
    return {name: dialect.insert(table).on_conflict_do_nothing(index_elements=key).returning(*key)
            for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}


def _serialize_sqlite_writers(engine: Engine) -> None:
    """WAL, and transactions begun IMMEDIATE (BEGIN): a transaction takes the write lock when it starts, so two
    writers queue (for up to the busy timeout) instead of one failing with 'database is locked' when it upgrades a
    read lock."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # autocommit: we emit BEGIN ourselves (Database._here)
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()


async def database(settings: Settings, service: str) -> Database:
    """The service's database, its schema created if missing and migrated to the newest revision."""
    db = Database(settings, service)
    telemetry.trace_statements(db.engine)
    await db.transaction(lambda conn: _migrate(conn, service), tries=1)
    return db


def _migrate(connection: Connection, service: str) -> None:
    if connection.dialect.name == "postgresql":
        # one migrator at a time when several replicas start together
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"sagashop:{service}"})
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service}"'))
    config = Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(ENV_DIR))
    config.set_main_option("version_locations", str(SERVICES_DIR / service / "migrations"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = service if connection.dialect.name == "postgresql" else None
    command.upgrade(config, "head")
