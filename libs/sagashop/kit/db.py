"""One database per service: a SQLite file under the data dir, or a schema of its own on a PostgreSQL server.

The schema is versioned with alembic: each service keeps its revisions in `services/<name>/migrations/`, and
`database()` upgrades to the newest before the service answers a call.

A service's code reaches its database one way: a unit of work is a plain function over a SQLAlchemy Connection
(the repositories are synchronous), and `Database` runs it whole, in one transaction (`transaction`) or in
autocommit (`autocommit`). The pool's connections are in autocommit and a transaction is begun and ended in SQL
around the unit, so an autocommit unit costs no switch of the connection's mode at checkout and back at checkin.
On PostgreSQL a unit runs on the engine's synchronous face in one greenlet that awaits asyncpg; on SQLite on a
worker thread with the standard sqlite3 driver, one hand-off between the event loop and that thread per unit
(through aiosqlite every statement, BEGIN and COMMIT would be a hand-off of its own).

Where PostgreSQL does an operation in one statement that SQLite needs several for, the repository keeps both
forms behind one method: `one_statement(conn)` picks PostgreSQL's, and the portable form runs its statements
under `all_or_nothing(conn)`. See `all_or_nothing` for why that is not a third way to run a unit.
"""

import asyncio
import contextvars
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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

# Not a public API. AsyncConnection's public calls (connect, run_sync, close) each run in a greenlet of their
# own; no public call runs a whole unit of work (checkout, its statements, checkin) in one, which costs a unit
# noticeably less CPU.
from sqlalchemy.util import greenlet_spawn

from . import telemetry
from .settings import Settings

SERVICES_DIR = Path(__file__).resolve().parents[3] / "services"
ENV_DIR = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")
BEGIN = {"postgresql": "BEGIN", "sqlite": "BEGIN IMMEDIATE"}  # how a transaction starts
Work = Callable[[Connection], T]
SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON")  # each connection
IN_TRANSACTION = "sagashop.in_transaction"  # in Connection.info while a transaction begun here is open
# An engine execution option: repositories take their portable forms on PostgreSQL too (the tests run both there)
PORTABLE_ONLY = "sagashop_portable_only"


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
                isolation_level="AUTOCOMMIT", pool_reset_on_return=None,  # we begin and end transactions
            )
            self.engine = self.server.sync_engine
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(f"sqlite:///{settings.data_dir / service}.db", pool_size=1, max_overflow=0)
            _serialize_sqlite_writers(self.engine)
            self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"{service}-db")
        self.dialect = self.engine.dialect.name

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
        """Runs `work` with no transaction around it: for reads, for writes of one statement, and for operations
        whose statements go under `all_or_nothing`. On PostgreSQL that saves the BEGIN and COMMIT round trips, on
        SQLite the write lock a read would otherwise take."""
        return await self._run(work, autocommit=True)

    async def _run(self, work: Work[T], *, autocommit: bool) -> T:
        if self.server is not None:  # the sync engine in one greenlet, where it awaits asyncpg
            return await greenlet_spawn(self._here, work, autocommit)
        # in the caller's context (its trace, its logs)
        return await asyncio.get_running_loop().run_in_executor(
            self.thread, contextvars.copy_context().run, self._here, work, autocommit)

    def _here(self, work: Work[T], autocommit: bool) -> T:
        with self.engine.connect() as conn:
            if autocommit:
                return work(conn)
            with _transaction(conn):
                return work(conn)

    async def dispose(self) -> None:
        if self.server is not None:
            await self.server.dispose()
        else:  # its connection belongs to its thread
            assert self.thread is not None
            await asyncio.get_running_loop().run_in_executor(self.thread, self.engine.dispose)
            self.thread.shutdown()


def one_statement(conn: Connection) -> bool:
    """Whether a repository takes the PostgreSQL-only one-statement form of an operation that has one: on
    PostgreSQL, unless its engine has the execution option PORTABLE_ONLY."""
    return conn.dialect.name == "postgresql" and not conn.get_execution_options().get(PORTABLE_ONLY, False)


@contextmanager
def all_or_nothing(conn: Connection) -> Iterator[None]:
    """The statements of the block commit together or not at all: in a transaction of their own, or in the unit's
    if it runs in one.

    This is how an operation of one statement on PostgreSQL and several in its portable form runs without a third
    way to run a unit: the servicer runs it in `autocommit`, where PostgreSQL's one statement is atomic on its own
    and costs no BEGIN and COMMIT round trips, and the portable form (SQLite's) opens the transaction it needs
    itself. So whether a unit needs a transaction is decided by the code that knows how many statements it sends."""
    if conn.info.get(IN_TRANSACTION):
        yield
        return
    with _transaction(conn):
        yield


@contextmanager
def _transaction(conn: Connection) -> Iterator[None]:
    """BEGIN and COMMIT around the block, in SQL (the connection is in autocommit); ROLLBACK if it fails."""
    info = conn.info  # read now: after an invalidation, reading it would fetch a new connection
    conn.exec_driver_sql(BEGIN[conn.dialect.name])
    info[IN_TRANSACTION] = True
    try:
        yield
        conn.exec_driver_sql("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise
    finally:
        info.pop(IN_TRANSACTION)


def _roll_back(conn: Connection) -> None:
    """Ends a failed transaction; a connection that cannot is dropped, never returned to the pool mid-way."""
    try:
        conn.exec_driver_sql("ROLLBACK")
    except BaseException:
        conn.invalidate()
        raise


def insert_if_absent(table: sa.Table) -> dict[str, sa.Insert]:
    """By dialect: an insert into `table` that does nothing if a row with its primary key is there already, and
    returns the key of the row it inserted (no row: a repeat). The same SQL on both databases, but SQLAlchemy
    builds ON CONFLICT only from a dialect's own insert. One statement makes an idempotent write one round trip; a
    repeat reads the first row after."""
    key = list(table.primary_key.columns)
    return {name: dialect.insert(table).on_conflict_do_nothing(index_elements=key).returning(*key)
            for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}


def _serialize_sqlite_writers(engine: Engine) -> None:
    """WAL, and transactions begun IMMEDIATE (BEGIN): a transaction takes the write lock when it starts, so two
    writers queue (for up to the busy timeout) instead of one failing with 'database is locked' when it upgrades a
    read lock."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # autocommit: we emit BEGIN ourselves (_transaction)
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
        # created only when missing: even with IF NOT EXISTS, CREATE SCHEMA needs the right to create schemas in
        # the database, which a role that owns its schema only (deploy/k8s/base/postgres.yaml) does not have
        if connection.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": service}).first() is None:
            connection.execute(text(f'CREATE SCHEMA "{service}"'))
    config = Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(ENV_DIR))
    config.set_main_option("version_locations", str(SERVICES_DIR / service / "migrations"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = service if connection.dialect.name == "postgresql" else None
    command.upgrade(config, "head")
