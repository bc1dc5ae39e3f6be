"""The relay: publishes a service's outbox to NATS JetStream, in `seq` order, each row once acknowledged marked
published; published rows are pruned after KEEP_PUBLISHED.

At least once: a row is marked only after JetStream acknowledged it, so a relay that stops between the two
publishes it again after its restart, under the same `Nats-Msg-Id` (its event id): JetStream drops a repeat that
arrives within the stream's duplicate window (DUPLICATE_WINDOW). While the broker is down the rows wait in the
outbox; the relay tries again after pauses that double up to LONGEST_PAUSE, and nothing is lost.

One relay per service publishes at a time: on PostgreSQL, where replicas share the schema, the one holding an
advisory lock on a connection of its own, which also runs its queries (if that connection breaks, the lock goes
with it and the relay starts over); on SQLite one process owns the file. It wakes as soon as a commit wrote
events in its process (`outbox.on_commit`) and otherwise looks every `poll_seconds` (another replica's writes).
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Connection

from sagashop.kit.clock import now
from sagashop.kit.db import Database
from sagashop.kit.faults import FaultRules
from sagashop.kit.settings import Settings

from . import connection
from .connection import stop as stop  # a part stops its relay as it started it: relay.stop(task)
from .outbox import on_commit, outbox
from .streams import DEFAULT_STREAMS, MAX_AGE, Streams

if TYPE_CHECKING:  # imported as the relay first connects: see connection.py
    from nats.aio.client import Client
    from nats.js import JetStreamContext

T = TypeVar("T")
Unit = Callable[[Callable[[Connection], T]], Awaitable[T]]
DUPLICATE_WINDOW = timedelta(minutes=2)  # a re-publish within it (same Nats-Msg-Id) is dropped by JetStream
MAX_BYTES = 1 << 30  # and at most this much of them: beyond, the oldest go first (storage is bounded)
KEEP_PUBLISHED = timedelta(hours=1)  # published rows kept for a look at what went out; the stream is the record
POLL_SECONDS = 0.5
# a round at most every ROUND_SECONDS: a commit that wakes the relay sooner waits for the rest of it, so under load
# a round publishes the events of many checkouts (one read, one mark) instead of a round per commit, which took CPU
# from the checkouts themselves; an event is published within about this much of its commit
ROUND_SECONDS = 0.25
BATCH = 256  # rows read and published per round
ACK_SECONDS = 5.0  # a publish not acknowledged in this time counts as failed; its row is published again
FIRST_PAUSE, LONGEST_PAUSE = 0.25, 5.0  # seconds between tries while the broker (or the database) fails
LOCK_RETRY_SECONDS = 2.0  # how often a standby relay asks for the lock
PRUNE_EVERY_SECONDS = 60.0
MEASURE_EVERY_SECONDS = 1.0
CRASH_POINT = "publish_events"  # the method a crash rule names to stop a service's relay after its publish
TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(hashtext(:name))")

DEPTH = Gauge("sagashop_outbox_depth", "events in the outbox not yet published", ["service"])
OLDEST = Gauge("sagashop_outbox_oldest_seconds", "age of the oldest event not yet published (0: none)", ["service"])
PUBLISHED = Counter("sagashop_events_published_total", "events published to JetStream and acknowledged",
                    ["event_type"])
PUBLISH_ERRORS = Counter("sagashop_event_publish_errors_total",
                         "failed publishes and connections to the broker (the events wait in the outbox)")
log = logging.getLogger(__name__)

UNPUBLISHED = (sa.select(outbox.c.seq, outbox.c.event_id, outbox.c.event_type, outbox.c.body, outbox.c.traceparent)
               .where(outbox.c.published_at.is_(None)).order_by(outbox.c.seq).limit(BATCH))
MARK = outbox.update().where(outbox.c.seq.in_(sa.bindparam("p_seqs", expanding=True))).values(
    published_at=sa.bindparam("p_at"))
WAITING = sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
PRUNE = outbox.delete().where(outbox.c.published_at < sa.bindparam("p_before"))


class Relay:
    """`await Relay(db, "payment", url).run()` publishes the service's outbox until cancelled. `streams` names
    the stream and its subjects (tests use their own); `crash_point`, if given, is called with "published" between
    a batch's acknowledgement and its mark (how a test, or a crash rule of the failure injection, stops it there)."""

    def __init__(self, db: Database, service: str, nats_url: str, *, streams: Streams = DEFAULT_STREAMS,
                 poll_seconds: float = POLL_SECONDS, crash_point: Callable[[str], None] | None = None) -> None:
        self.db, self.service, self.url = db, service, nats_url
        self.streams, self.poll = streams, poll_seconds
        self.crash_point = crash_point
        self.woken = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        on_commit(db.engine, self.wake)

    def wake(self) -> None:
        """Called from whichever thread committed events: the relay looks at once."""
        if self.loop is not None and not self.woken.is_set():
            self.loop.call_soon_threadsafe(self.woken.set)

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        pause = FIRST_PAUSE
        with suppress_instrumentation():  # its polls are no one's request: no span per statement
            try:
                while True:
                    try:
                        async with self._turn() as unit:
                            pause = FIRST_PAUSE
                            await self._relay(unit)
                    except Exception as e:  # the database failed it: its lock may be gone with its connection
                        log.warning("the %s outbox relay stopped (%s); starting again in %.1f s", self.service,
                                    e, pause)
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, LONGEST_PAUSE)
            finally:
                await self._disconnect()

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[Unit[Any]]:
        """Once this relay may publish: a function running a unit on its database (on PostgreSQL, on the
        connection that holds the lock)."""
        if self.db.server is None:
            yield self.db.autocommit
            return
        conn = await self.db.server.connect()
        try:
            name = f"sagashop:outbox:{self.service}"
            # the lock is held by another process: nothing here could signal its release
            while not await conn.run_sync(lambda c: c.execute(TRY_LOCK, {"name": name}).scalar()):  # noqa: ASYNC110
                await asyncio.sleep(LOCK_RETRY_SECONDS)
            log.info("the %s outbox relay holds the lock: publishing", self.service)

            async def unit(work: Callable[[Connection], T]) -> T:
                return await conn.run_sync(work)

            yield unit
        finally:
            await conn.invalidate()  # closed, not pooled: the server lets the lock go with the session
            await conn.close()

    async def _relay(self, unit: Unit[Any]) -> None:
        pause, measured, pruned = 0.0, 0.0, 0.0
        while True:
            began = time.monotonic()
            self.woken.clear()  # before reading: a commit from here on wakes the next round
            sent = 0
            try:
                sent = await self._publish(unit, await self._jetstream())
                pause = 0.0
            except Exception as e:  # the broker: down, slow, or refusing
                PUBLISH_ERRORS.inc()
                pause = min(max(pause * 2, FIRST_PAUSE), LONGEST_PAUSE)
                log.warning("publishing the %s outbox failed (%s); trying again in %.1f s", self.service,
                            e or type(e).__name__, pause)
                await self._disconnect()
            moment = time.monotonic()
            if pause or moment - measured >= MEASURE_EVERY_SECONDS:  # in an outage, what waits is the news
                await unit(self._measure)
                measured = moment
            if moment - pruned >= PRUNE_EVERY_SECONDS:
                await unit(lambda conn: conn.execute(PRUNE, {"p_before": now() - KEEP_PUBLISHED}))
                pruned = moment
            if pause:
                await asyncio.sleep(pause)
            elif sent < BATCH:  # a full batch: more may wait
                try:
                    await asyncio.wait_for(self.woken.wait(), self.poll)
                except TimeoutError:
                    pass
                await asyncio.sleep(began + ROUND_SECONDS - time.monotonic())  # (no wait when negative)

    async def _publish(self, unit: Unit[Any], js: "JetStreamContext") -> int:
        """Publishes the next batch in order and marks what was acknowledged, up to the first row that was not (a
        later row is published again with it: never marked before an earlier one). How many rows it read.

        The batch goes out at once, each publish awaiting its acknowledgement together with the others': the
        messages leave in order on the one connection, and a fifth of the CPU of one round trip per row stays
        with the checkouts."""
        rows: Sequence[sa.Row[Any]] = await unit(lambda conn: conn.execute(UNPUBLISHED).all())
        acked: list[sa.Row[Any]] = []
        try:
            pending = []
            for row in rows:
                headers = {"Nats-Msg-Id": row.event_id}
                if row.traceparent:
                    headers["traceparent"] = row.traceparent
                pending.append(await js.publish_async(self.streams.subject(row.event_type), row.body.encode(),
                                                      stream=self.streams.events, headers=headers))
            if pending:
                await asyncio.wait(pending, timeout=ACK_SECONDS)
            for row, answer in zip(rows, pending, strict=True):
                if not answer.done():
                    raise TimeoutError(f"no acknowledgement of event {row.event_id} within {ACK_SECONDS:g} s")
                answer.result()  # JetStream's refusal, raised
                acked.append(row)
        finally:
            for answer in pending[len(acked):]:
                answer.cancel()
            if acked:
                if self.crash_point is not None:
                    self.crash_point("published")
                await unit(lambda conn: conn.execute(MARK, {"p_seqs": [r.seq for r in acked], "p_at": now()}))
                for row in acked:
                    PUBLISHED.labels(row.event_type).inc()
        return len(rows)

    def _measure(self, conn: Connection) -> None:
        count, oldest = conn.execute(WAITING).one()
        DEPTH.labels(self.service).set(count)
        if oldest is not None and oldest.tzinfo is None:  # SQLite hands back naive values, stored as UTC
            oldest = oldest.replace(tzinfo=now().tzinfo)
        OLDEST.labels(self.service).set((now() - oldest).total_seconds() if oldest else 0.0)

    async def _jetstream(self) -> "JetStreamContext":
        """The connection's JetStream, connecting (and making sure the stream is there) when there is none."""
        if self.js is not None and self.nc is not None and self.nc.is_connected:
            return self.js
        from nats.js.api import StorageType, StreamConfig

        await self._disconnect()
        self.nc = await connection.connect(self.url, f"sagashop-{self.service}-relay")
        js = self.nc.jetstream(timeout=ACK_SECONDS)
        await connection.ensure_stream(js, StreamConfig(
            name=self.streams.events, subjects=[f"{self.streams.events_prefix}.>"], storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW.total_seconds(), max_age=MAX_AGE.total_seconds(), max_bytes=MAX_BYTES))
        self.js = js
        return js

    async def _disconnect(self) -> None:
        nc, self.nc, self.js = self.nc, None, None
        await connection.close(nc)


def start(db: Database, service: str, settings: Settings,
          faults: FaultRules | None = None) -> asyncio.Task[None] | None:
    """What a service's main calls: the relay as a background task if SAGASHOP_NATS_URL is set, else None (the
    events wait in the outbox). With `faults`, a crash rule on CRASH_POINT stops the process between a batch's
    acknowledgement and its mark."""
    if not settings.nats_url:
        log.info("SAGASHOP_NATS_URL is not set: the %s service's events wait in its outbox", service)
        return None
    crash = (lambda _: faults.crash_point(CRASH_POINT, "after")) if faults else None
    relay = Relay(db, service, settings.nats_url, streams=Streams.of(settings), crash_point=crash)
    return asyncio.create_task(relay.run(), name=f"{service}-outbox-relay")

