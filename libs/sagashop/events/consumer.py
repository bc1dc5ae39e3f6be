"""A consumer: applies the domain events to a part's own database, each once, through its handlers.

Two durable pull consumers named after it read for it: one on the events stream (every event type; a type it has
no handler for is acknowledged and skipped), one on its subject of the replay stream (dead letters an operator sent
back: `deadletters.replay`). A batch of messages is applied in one transaction, each event's id noted in the inbox
(`inbox.py`) with its effect, so an event delivered again (the batch committed, the consumer stopped before its
acknowledgements) is skipped; what no rollback undoes (an email) waits until every event of the batch applied
(`delivery.Effect`); the messages are acknowledged after the commit. If the batch fails, its messages are
applied one by one, each in a transaction of its own, to find the one that fails: that one is delivered again after
a pause (BACKOFF), and after MAX_DELIVERIES it is dead-lettered (`deadletters.py`); an event that can never apply
(unreadable, invalid, or its handler raised Poison) is dead-lettered at once. While the broker is down the consumer
tries again after pauses that double up to LONGEST_PAUSE, and so while its database is down (what it fetched comes
again after the ack wait, and is not dead-lettered for it). (`rebuild.py` applies the whole stream again.)
"""

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from sagashop.kit import telemetry
from sagashop.kit.clock import now, rfc3339
from sagashop.kit.db import Database
from sagashop.kit.settings import Settings

from . import connection, deadletters, inbox
from .connection import stop
from .delivery import Delivery, Effect, Handler, Handlers, Poison, apply_all, lock
from .streams import DEFAULT_STREAMS, Streams

if TYPE_CHECKING:  # imported as the consumer first connects: see connection.py
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["Consumer", "Effect", "Handler", "Handlers", "Poison", "start", "stop"]

BATCH = 64  # messages fetched and applied in one transaction, at most
# a fetch at most every ROUND_SECONDS while the stream has fewer than BATCH waiting: under load a batch then holds
# the events of many checkouts (one transaction, one commit) instead of the few one relay round brought, which
# took CPU from the checkouts themselves; an event is applied within about this much more of its publication
ROUND_SECONDS = 0.25
FETCH_SECONDS = 1.0  # how long a fetch waits for a first message (then the consumer asks again)
ACK_WAIT_SECONDS = 30.0  # a message not acknowledged in this time (its consumer stopped) is delivered again
# (a part's: SAGASHOP_EVENT_ACK_WAIT_SECONDS)
MAX_ACK_PENDING = 4 * BATCH  # messages delivered and not yet acknowledged, at most, per durable consumer
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds before the n-th delivery again of a message that failed
MAX_DELIVERIES = len(BACKOFF) + 1  # then it is dead-lettered: about 15 s after its first failure
MAX_ERROR = 500  # characters of the error a dead letter keeps (its first line)
FIRST_PAUSE, LONGEST_PAUSE = 0.25, 5.0  # seconds between tries while the broker (or the database) fails
REQUEST_SECONDS = 5.0  # a JetStream request (a publish's acknowledgement, a consumer's info) not answered: failed
MEASURE_EVERY_SECONDS = 2.0
PRUNE_EVERY_SECONDS = 3600.0

CONSUMED = Counter("sagashop_events_consumed_total", "events applied by a consumer (each once)",
                   ["consumer", "event_type"])
REDELIVERIES = Counter("sagashop_event_redeliveries_total", "deliveries of an event that failed, to be tried again",
                       ["consumer"])
DEAD_LETTERS = Counter("sagashop_dead_letters_total", "events a consumer gave up on (dead-lettered)", ["consumer"])
LAG = Gauge("sagashop_consumer_lag", "events not yet applied: waiting, or delivered and not acknowledged",
            ["consumer"])
LAST_APPLIED = Gauge("sagashop_consumer_last_applied_seconds", "age of the newest event applied (0: none yet)",
                     ["consumer"])
log = logging.getLogger(__name__)


class Consumer:
    """`await Consumer(db, "reporting", url, handlers).run()` applies the events until cancelled. `streams` names
    the streams (tests use their own); `crash_point`, if given, is called with "applied" between a batch's commit
    and its acknowledgements (a test's way to stop it there)."""

    def __init__(self, db: Database, name: str, nats_url: str, handlers: Handlers, *,
                 streams: Streams = DEFAULT_STREAMS, batch: int = BATCH, backoff: tuple[float, ...] = BACKOFF,
                 max_deliveries: int = MAX_DELIVERIES, ack_wait: float = ACK_WAIT_SECONDS,
                 crash_point: Callable[[str], None] | None = None) -> None:
        self.db, self.name, self.url, self.handlers = db, name, nats_url, handlers
        self.streams, self.batch, self.backoff, self.max_deliveries = streams, batch, backoff, max_deliveries
        self.ack_wait = ack_wait  # (set when its durable consumers are made: the first run's stays)
        self.crash_point = crash_point
        self.nc: Client | None = None
        self.pause = FIRST_PAUSE  # before the next try; back to the first once a try got as far as reading
        self.newest: float | None = None  # when the newest event applied happened (epoch seconds)

    async def run(self) -> None:
        with suppress_instrumentation():  # its fetches are no one's request: no span per statement of them
            try:
                while True:
                    try:
                        await self._consume(await self._connect())
                    except Exception as e:  # the broker: down, or refusing (no stream yet); or the database
                        log.warning("the %s consumer stopped (%s); starting again in %.1f s", self.name,
                                    _reason(e), self.pause)
                        await self._disconnect()
                        await asyncio.sleep(self.pause)
                        self.pause = min(self.pause * 2, LONGEST_PAUSE)
            finally:
                await self._disconnect()

    async def _connect(self) -> "JetStreamContext":
        await self._disconnect()
        self.nc = await connection.connect(self.url, f"sagashop-{self.name}-consumer")
        js = self.nc.jetstream(timeout=REQUEST_SECONDS)
        await deadletters.ensure_streams(js, self.streams)
        return js

    async def _consume(self, js: "JetStreamContext") -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        subs = []
        for stream, subject in ((self.streams.events, f"{self.streams.events_prefix}.>"),
                                (self.streams.replays, self.streams.replay_subject(self.name))):
            # max_deliver unbounded: the consumer counts deliveries itself, and dead-letters before giving up
            config = ConsumerConfig(durable_name=self.name, deliver_policy=DeliverPolicy.ALL,
                                    ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                                    max_ack_pending=MAX_ACK_PENDING, filter_subject=subject)
            subs.append(await js.pull_subscribe(subject, durable=self.name, stream=stream, config=config))
        log.info("the %s consumer is reading %s and its replays", self.name, self.streams.events)
        self.pause = FIRST_PAUSE
        async with asyncio.TaskGroup() as group:  # one failing (the broker gone) stops the others
            for sub in subs:
                group.create_task(self._pull(js, sub))
            group.create_task(self._measure(subs))

    async def _pull(self, js: "JetStreamContext", sub: Any) -> None:
        from nats.errors import TimeoutError as NoMessages

        while True:
            try:
                messages = await sub.fetch(self.batch, timeout=FETCH_SECONDS)
            except NoMessages:
                if self.nc is None or not self.nc.is_connected:
                    raise ConnectionError("the connection to the broker closed") from None
                continue
            began = time.monotonic()
            await self._handle(js, messages)
            if len(messages) < self.batch:  # none left waiting: let the next round's gather
                await asyncio.sleep(began + ROUND_SECONDS - time.monotonic())  # (no wait when negative)

    async def _handle(self, js: "JetStreamContext", messages: list["Msg"]) -> None:
        ready: list[Delivery] = []
        for msg in messages:
            try:
                delivery = Delivery.read(msg.data, msg.subject, msg.headers or {}, msg.metadata.sequence.stream,
                                         self.handlers)
            except Poison as e:
                await self._dead_letter(js, msg, Delivery.identify(msg.data, msg.metadata.sequence.stream), e)
                continue
            if delivery.handler is None:  # an event type it does not consume
                await msg.ack()
            else:
                ready.append(delivery)
        if not ready:
            return
        try:
            applied = await self.db.transaction(lambda conn: self._apply(conn, ready), tries=1)
        except Exception:  # one of them failed: which?
            await self._one_by_one(js, messages, ready)
            return
        if self.crash_point is not None:
            self.crash_point("applied")
        await self._acknowledge(messages, ready, applied)

    async def _one_by_one(self, js: "JetStreamContext", messages: list["Msg"], ready: list[Delivery]) -> None:
        by_seq = {m.metadata.sequence.stream: m for m in messages}
        for delivery in ready:
            msg = by_seq[delivery.seq]
            try:
                applied = await self.db.transaction(partial(self._apply, deliveries=[delivery]), tries=1)
            except Exception as e:  # noqa: BLE001 - every failure is dead-lettered or tried again
                await self._failed(js, msg, delivery, e)
            else:
                await self._acknowledge([msg], [delivery], applied)

    def _apply(self, conn: Connection, deliveries: list[Delivery]) -> list[Delivery]:
        """In the unit's transaction, under the shared lock a rebuild waits for: what was applied (not seen)."""
        lock(conn, self.name, exclusive=False)
        return apply_all(conn, deliveries, self.name)

    async def _acknowledge(self, messages: list["Msg"], ready: list[Delivery], applied: list[Delivery]) -> None:
        for d in applied:
            CONSUMED.labels(self.name, d.event_type).inc()
            self.newest = max(self.newest or 0.0, d.occurred_at)
        handled = {d.seq for d in ready}
        await asyncio.gather(*(m.ack() for m in messages if m.metadata.sequence.stream in handled))

    async def _failed(self, js: "JetStreamContext", msg: "Msg", delivery: Delivery, error: Exception) -> None:
        if not await self.db.answers():  # the database failed, not the event: its outage dead-letters nothing
            raise ConnectionError(f"the database did not answer ({_reason(error)})")
        deliveries = msg.metadata.num_delivered
        if isinstance(error, Poison | ValidationError) or deliveries >= self.max_deliveries:
            await self._dead_letter(js, msg, delivery, error)
            return
        REDELIVERIES.labels(self.name).inc()
        pause = self.backoff[min(deliveries, len(self.backoff)) - 1]
        log.warning("the %s consumer failed event %s (%s, delivery %d): trying again in %.1f s", self.name,
                    delivery.event_id, _reason(error), deliveries, pause)
        await msg.nak(delay=pause)

    async def _dead_letter(self, js: "JetStreamContext", msg: "Msg", delivery: Delivery, error: Exception) -> None:
        """Publishes the message to the dead-letter stream with why, then terminates it: never delivered again.
        The letter's Nats-Msg-Id is the same for this event however often this repeats (a stop between the
        publish and the termination), within one replay of it."""
        reason = _reason(error)
        generation = (msg.headers or {}).get(deadletters.REPLAY, "0")
        headers = {
            deadletters.CONSUMER: self.name, deadletters.EVENT_ID: delivery.event_id,
            deadletters.EVENT_TYPE: delivery.event_type, deadletters.ERROR: reason,
            deadletters.DELIVERIES: str(msg.metadata.num_delivered), deadletters.FAILED_AT: rfc3339(now()),
            deadletters.MSG_ID: f"dead.{self.name}.{delivery.event_id}.{generation}"}
        if delivery.traceparent:
            headers[telemetry.TRACEPARENT] = delivery.traceparent
        await js.publish(self.streams.dead_subject(self.name), msg.data, stream=self.streams.dead_letters,
                         headers=headers)
        await msg.term()
        DEAD_LETTERS.labels(self.name).inc()
        log.error("the %s consumer dead-lettered event %s (%s): %s", self.name, delivery.event_id,
                  delivery.event_type, reason)

    async def _measure(self, subs: list[Any]) -> None:
        pruned = time.monotonic()
        while True:
            infos = [await sub.consumer_info() for sub in subs]
            LAG.labels(self.name).set(sum(i.num_pending + i.num_ack_pending for i in infos))
            if self.newest is not None:
                LAST_APPLIED.labels(self.name).set(max(0.0, time.time() - self.newest))
            if time.monotonic() - pruned >= PRUNE_EVERY_SECONDS:
                await self.db.autocommit(inbox.prune)
                pruned = time.monotonic()
            await asyncio.sleep(MEASURE_EVERY_SECONDS)

    async def _disconnect(self) -> None:
        nc, self.nc = self.nc, None
        await connection.close(nc)


def _reason(error: BaseException) -> str:
    """One line of at most MAX_ERROR characters: the error's type and the first line of its words (of the first
    of a group's: the failure that stopped the consumer's other tasks)."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    words = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {words[0]}" if words else type(error).__name__
    return line[:MAX_ERROR]


def start(db: Database, name: str, settings: Settings, handlers: Handlers) -> asyncio.Task[None] | None:
    """What a consuming part's main calls: the consumer as a background task if SAGASHOP_NATS_URL is set, else
    None (the part serves what it has)."""
    if not settings.nats_url:
        log.info("SAGASHOP_NATS_URL is not set: the %s consumer applies no events", name)
        return None
    consumer = Consumer(db, name, settings.nats_url, handlers, streams=Streams.of(settings),
                        ack_wait=settings.event_ack_wait_seconds)
    return asyncio.create_task(consumer.run(), name=f"{name}-consumer")


