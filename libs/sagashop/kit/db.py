"""One database per service: a SQLite file under the data dir, or a schema of its own on a PostgreSQL server.

The schema is versioned with alembic: each service keeps its revisions in `services/<name>/migrations/`, and
`database()` upgrades to the newest before the service answers a call (`schema.py`: how an older version of the
service starts on a schema a newer one migrated), waiting for a server that does not answer yet.

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
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Not a public API. AsyncConnection's public calls (connect, run_sync, close) each run in a greenlet of their
# own; no public call runs a whole unit of work (checkout, its statements, checkin) in one, which costs a unit
# noticeably less CPU.
from sqlalchemy.util import await_only, greenlet_spawn

from . import telemetry
from .schema import CannotStart, migrate
from .settings import Settings

T = TypeVar("T")
BEGIN = {"postgresql": "BEGIN", "sqlite": "BEGIN IMMEDIATE"}  # how a transaction starts
Work = Callable[[Connection], T]
SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON")  # each connection
IN_TRANSACTION = "sagashop.in_transaction"  # in Connection.info while a transaction begun here is open
# An engine execution option: repositories take their portable forms on PostgreSQL too (the tests run both there)
PORTABLE_ONLY = "sagashop_portable_only"
CONNECT_SECONDS = 10.0  # asyncpg's timeout of a new connection (its own default: 60 s)
FIRST_PAUSE, LONGEST_PAUSE = 0.25, 5.0  # seconds between tries to reach a database that is not answering yet
STARTING_UP = "57P03"  # PostgreSQL's cannot_connect_now: the database system is starting up (or recovering)
REFUSALS = ("28", "3D")  # PostgreSQL's classes of a refused login and of a database that does not exist
log = logging.getLogger(__name__)


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
                # a server that drops our packets (rather than refusing) fails a connection in this time, not
                # asyncpg's 60 s: a start waiting for the database tries again sooner, a call fails within its deadline
                connect_args={"server_settings": {"search_path": service}, "timeout": CONNECT_SECONDS},
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

    async def answers(self) -> bool:
        """Whether the database runs a statement now: after a unit of work failed, whether the database failed it."""
        try:
            await self.autocommit(lambda conn: conn.exec_driver_sql("SELECT 1"))
        except Exception:  # noqa: BLE001 - whatever went wrong, it did not answer
            return False
        return True

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


def off_the_loop(conn: Connection, work: Callable[[], T]) -> T:
    """Runs blocking work that is not the database's (an SMTP exchange, say) from inside a unit of work on `conn`,
    without stalling the event loop: on PostgreSQL a unit runs in a greenlet on the loop, so the work goes to a
    thread and the unit awaits it as the driver awaits the server; on SQLite a unit runs on the database's own
    worker thread already."""
    if conn.dialect.name == "postgresql":
        return await_only(asyncio.to_thread(work))
    return work()


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
    """The service's database, its schema created if missing and migrated to the newest revision (or left as it is
    when a newer version of the service migrated it further: `schema.migrate`). A server not answering yet (still
    starting, its address not resolvable yet) is waited for, up to SAGASHOP_DATABASE_WAIT_SECONDS."""
    db = Database(settings, service)
    telemetry.trace_statements(db.engine)
    try:
        await _migrate_once_reachable(db, settings, service)
    except BaseException:
        await db.dispose()
        raise
    return db


async def _migrate_once_reachable(db: Database, settings: Settings, service: str) -> None:
    """Migrates, trying again after a pause while the server cannot be reached, until the wait's bound. Pauses
    double up to LONGEST_PAUSE, each shortened at random so that replicas started together do not try in step."""
    where = _server(settings.database_url)
    deadline = time.monotonic() + settings.database_wait_seconds
    pause = FIRST_PAUSE
    while True:
        try:
            return await db.transaction(lambda conn: migrate(conn, service), tries=1)
        except Exception as e:
            if refusal := _refused(e):
                raise CannotStart(f"the database at {where} refused {service}: {refusal}") from None
            reason = _transient(e) if db.server is not None else None
            if reason is None:
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise CannotStart(f"the database at {where} did not answer within "
                                  f"{settings.database_wait_seconds:g} s: {reason}") from None
            wait = min(left, pause * random.uniform(0.5, 1.0))
            log.warning("waiting %.1f s for the database at %s: %s", wait, where, reason)
            await asyncio.sleep(wait)
            pause = min(pause * 2, LONGEST_PAUSE)


def _transient(error: Exception) -> str | None:
    """Why `error` may pass if we wait (the server refused or dropped the connection, its name does not resolve
    yet, it is starting up), in words that hold no credentials; None for an error that waiting will not mend."""
    if isinstance(error, OSError):  # refused, reset, timed out, name not resolved: asyncpg raises these bare
        return str(error) or type(error).__name__
    if isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) == STARTING_UP:
        return str(error.orig)
    return None


def _refused(error: Exception) -> str | None:
    """The server's own words when it turned us away for good: a login it does not accept, a database it lacks."""
    if isinstance(error, DBAPIError) and str(getattr(error.orig, "sqlstate", "")).startswith(REFUSALS):
        return str(error.orig)
    return None


def _server(url: str | None) -> str:
    """host:port of the PostgreSQL server, as errors and logs name it (never with the user or password)."""
    if not url:
        return "(SQLite files)"
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
