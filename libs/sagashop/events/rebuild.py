"""A rebuild: a consumer's read models made again from the events stream, from its first event, in one
transaction. Under the consumer's exclusive lock (PostgreSQL; SQLite's write lock does the same), it clears them
and the inbox, reads the stream up to the last event it held when the lock was taken, and applies each event as
the live consumer does (`delivery.apply`). Meanwhile the live consumer's batches wait for the lock; after the
commit the inbox makes it skip what the rebuild applied. What the stream no longer holds (older than its 7 days,
or beyond its size) is not in the rebuilt models: a rebuild gives what the stream's events make."""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only

from sagashop.kit.db import Database
from sagashop.kit.errors import Unavailable

from . import connection, inbox
from .delivery import Delivery, Handlers, Poison, apply, lock
from .streams import Streams

if TYPE_CHECKING:
    from nats.js import JetStreamContext

T = TypeVar("T")
UNAVAILABLE = "events_unavailable"  # the error code of a rebuild the broker failed
CHUNK = 256  # messages fetched at a time
FETCH_SECONDS = 5.0  # the stream holds every message up to the last: a fetch waiting longer is a broker failing
log = logging.getLogger(__name__)


async def rebuild(db: Database, name: str, nats_url: str, handlers: Handlers, clear: Callable[[Connection], None],
                  *, streams: Streams) -> int:
    """Clears the consumer's read models (`clear`) and its inbox, applies the stream's events again: how many.
    Unavailable (`events_unavailable`) when the broker fails it: then nothing changed."""
    from nats.errors import Error as BrokerError
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    loop = asyncio.get_running_loop()
    try:
        nc = await connection.connect(nats_url, f"sagashop-{name}-rebuild")
    except (OSError, BrokerError) as e:
        raise Unavailable(f"the broker did not answer: {e or type(e).__name__}", code=UNAVAILABLE) from None
    try:
        js = nc.jetstream(timeout=FETCH_SECONDS)
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
                                inactive_threshold=60.0, max_ack_pending=-1)
        sub = await js.pull_subscribe(f"{streams.events_prefix}.>", stream=streams.events, config=config)

        def work(conn: Connection) -> int:
            lock(conn, name, exclusive=True)
            last = _wait(conn, loop, _last_seq(js, streams))  # read under the lock: nothing applied since
            clear(conn)
            conn.execute(inbox.CLEAR)
            applied, seq = 0, 0
            while seq < last:
                for msg in _wait(conn, loop, sub.fetch(CHUNK, timeout=FETCH_SECONDS)):
                    seq = msg.metadata.sequence.stream
                    if seq > last:
                        break
                    applied += _apply(conn, name, handlers, msg)
            return applied

        return await db.transaction(work, tries=1)
    except (OSError, BrokerError) as e:  # (a fetch that timed out is both)
        raise Unavailable(f"the event stream could not be read: {e or type(e).__name__}", code=UNAVAILABLE) from None
    finally:
        await nc.close()


def _apply(conn: Connection, name: str, handlers: Handlers, msg: Any) -> int:
    try:
        delivery = Delivery.read(msg.data, msg.subject, msg.headers or {}, msg.metadata.sequence.stream, handlers)
    except Poison as e:  # dead-lettered by the live consumer: not in the models either
        log.warning("the %s rebuild skipped the message at %d: %s", name, msg.metadata.sequence.stream, e)
        return 0
    if delivery.handler is None:
        return 0
    # an event its handler refuses is one the live consumer dead-lettered: none of it goes into the models, so its
    # writes (its inbox row first) are undone to a savepoint, and the rebuild goes on
    conn.exec_driver_sql("SAVEPOINT rebuild_event")
    try:
        applied = apply(conn, delivery, name)
    except (Poison, ValidationError) as e:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT rebuild_event")
        log.warning("the %s rebuild skipped event %s: %s", name, delivery.event_id, e.__class__.__name__)
        return 0
    conn.exec_driver_sql("RELEASE SAVEPOINT rebuild_event")
    return int(applied)


async def _last_seq(js: "JetStreamContext", streams: Streams) -> int:
    """The sequence of the stream's last event; 0 when it holds none (every one aged out: its last_seq stays)."""
    state = (await js.stream_info(streams.events)).state
    return int(state.last_seq) if state.messages else 0


def _wait(conn: Connection, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Awaits `coro` from inside a unit of work, so the stream is read while the transaction holds the lock: on
    PostgreSQL the unit runs in a greenlet on the loop (kit.db), which awaits as the driver does; on SQLite on the
    database's worker thread, which waits for the loop to run it."""
    if conn.dialect.name == "postgresql":
        return await_only(coro)
    return asyncio.run_coroutine_threadsafe(coro, loop).result(FETCH_SECONDS * 2)
