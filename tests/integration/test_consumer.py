"""A consumer applies each event once, whatever happens: stopped between its commit and its acknowledgements, a
handler failing for a while or for good, a poison event, a dead letter replayed, the broker down then up. Each test
on streams of its own, on the real NATS server (one test on a server of its own, to stop it)."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
from opentelemetry import trace
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from sagashop.events import outbox
from sagashop.events.catalog import PaymentCharged
from sagashop.events.consumer import REDELIVERIES, Consumer, Poison
from sagashop.events.deadletters import list_dead_letters, replay
from sagashop.events.envelope import Envelope
from sagashop.events.streams import Streams
from sagashop.kit import telemetry
from sagashop.kit.db import Database, database
from sagashop.kit.settings import Settings
from tests.integration import test_relay
from tests.integration.test_relay import Crash
from tools.local.parts import free_port

own_nats = test_relay.own_nats  # a NATS server of the test's own, to stop and start
CONSUMER = "reporting"  # a schema with an inbox; the tests' handlers write to a table of their own


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    made = await database(settings, CONSUMER)
    await made.autocommit(lambda conn: conn.execute(text("CREATE TABLE applied (event_id varchar(64))")))
    yield made
    await made.dispose()


@pytest.fixture
async def js(nats_server: str) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_server, connect_timeout=2)
    yield nc.jetstream()
    await nc.close()


@pytest.fixture
def names(event_streams: Streams) -> Streams:
    return event_streams


def applying(fail: Callable[[PaymentCharged], Exception | None] = lambda _: None) -> dict[str, Any]:
    """Handlers noting each payment.charged in `applied`, unless `fail` gives an error to raise for it."""

    def handle(conn: Connection, event: Envelope[Any]) -> None:
        if error := fail(event.payload):
            raise error
        conn.execute(text("INSERT INTO applied VALUES (:e)"), {"e": event.event_id})

    return {"payment.charged": (PaymentCharged, handle)}


async def publish(js: Any, names: Streams, *cents: int, traceparent: str | None = None) -> list[str]:
    ids = []
    for amount in cents:
        event = outbox.event(PaymentCharged(payment_id=uuid.uuid4().hex, order_id="o1", amount_cents=amount,
                                            currency="EUR"), "o1")
        headers = {"Nats-Msg-Id": event.event_id, **({"traceparent": traceparent} if traceparent else {})}
        await js.publish(names.subject(event.event_type), event.body.encode(), headers=headers)
        ids.append(event.event_id)
    return ids


async def applied(db: Database) -> list[str]:
    return sorted(await db.autocommit(lambda conn: conn.execute(text("SELECT event_id FROM applied")).scalars().all()))


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not within the time")


async def running(consumer: Consumer) -> Callable[[], Awaitable[None]]:
    task = asyncio.create_task(consumer.run())

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return stop


async def settled(js: Any, names: Streams) -> bool:
    try:
        info = await js.consumer_info(names.events, CONSUMER)
    except nats.js.errors.NotFoundError:  # not made yet
        return False
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def test_a_consumer_stopped_between_commit_and_acks_applies_each_event_once(db, js, names, nats_server):
    ids = await publish(js, names, 1, 2, 3, 4, 5)

    def crash(point: str) -> None:
        raise Crash(point)

    first = Consumer(db, CONSUMER, nats_server, applying(), streams=names, ack_wait=1.0, crash_point=crash)
    with pytest.raises(BaseExceptionGroup) as stopped:  # (from the task that was applying the batch)
        await asyncio.wait_for(first.run(), 10)
    assert stopped.group_contains(Crash)
    committed = await applied(db)  # (a first batch: all five, or those the broker had sent it)
    assert committed and set(committed) <= set(ids)  # committed, never acknowledged

    stop = await running(Consumer(db, CONSUMER, nats_server, applying(), streams=names, ack_wait=1.0))
    try:
        more = await publish(js, names, 6)
        await until(lambda: settled(js, names))  # the five came again (after ack_wait) and were acknowledged
    finally:
        await stop()
    assert await applied(db) == sorted(ids + more)


async def test_a_failing_event_is_tried_again_with_pauses_then_dead_lettered_with_why(db, js, names, nats_server):
    tries: dict[int, int] = {}

    def fail(payload: PaymentCharged) -> Exception | None:
        tries[payload.amount_cents] = tries.get(payload.amount_cents, 0) + 1
        if payload.amount_cents == 13 or (payload.amount_cents == 7 and tries[7] <= 2):
            return RuntimeError(f"no luck with {payload.amount_cents}\nsecond line")
        return None

    before = REDELIVERIES.labels(CONSUMER)._value.get()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ok, unlucky, failing = await publish(js, names, 1, 7, 13, traceparent=parent)
    stop = await running(Consumer(db, CONSUMER, nats_server, applying(fail), streams=names,
                                  backoff=(0.2, 0.4), max_deliveries=3))
    try:
        await until(lambda: settled(js, names))
    finally:
        await stop()

    assert await applied(db) == sorted([ok, unlucky])  # 7 passed on its second delivery (its third try)
    [letter] = await list_dead_letters(js, names)
    assert (letter.consumer, letter.event_id, letter.event_type, letter.deliveries) == (
        CONSUMER, failing, "payment.charged", 3)
    assert letter.error == "RuntimeError: no luck with 13" and letter.failed_at.endswith("Z")
    raw = await js.get_msg(names.dead_letters, int(letter.id))
    assert raw.headers["Nats-Msg-Id"] == f"dead.{CONSUMER}.{failing}.0"
    assert raw.headers["traceparent"] == parent
    assert REDELIVERIES.labels(CONSUMER)._value.get() - before == 3  # 7 once, 13 twice


async def test_what_events_make_happen_outside_the_database_happens_once_when_one_of_their_batch_fails(
        db, js, names, nats_server):
    """An effect (an email, say) is made only once its whole batch applied: an event failing in the batch, which
    is then applied one by one, does not make the others' effects happen twice."""
    made: list[int] = []  # what the effects did, in order
    tries: dict[int, int] = {}

    def handle(conn: Connection, event: Envelope[Any]) -> Callable[[], None]:
        cents = event.payload.amount_cents
        tries[cents] = tries.get(cents, 0) + 1
        if cents == 4 and tries[cents] == 1:
            raise RuntimeError("not this time")
        conn.execute(text("INSERT INTO applied VALUES (:e)"), {"e": event.event_id})
        return lambda: made.append(cents)

    await publish(js, names, 1, 2, 3, 4, 5)
    stop = await running(Consumer(db, CONSUMER, nats_server, {"payment.charged": (PaymentCharged, handle)},
                                  streams=names, backoff=(0.2,)))
    try:
        await until(lambda: settled(js, names))
    finally:
        await stop()
    assert tries[1] == 2  # it was in the batch that failed, and applied again on its own
    assert sorted(made) == [1, 2, 3, 4, 5] and len(await applied(db)) == 5


async def test_poison_is_dead_lettered_at_once(db, js, names, nats_server):
    def fail(payload: PaymentCharged) -> Exception | None:
        return Poison("never") if payload.amount_cents == 66 else None

    await js.publish(names.subject("payment.charged"), b"{not json")
    await js.publish(names.subject("payment.charged"), b'{"event_id": "e1", "event_type": "payment.charged"}')
    poisoned, fine = await publish(js, names, 66, 1)
    stop = await running(Consumer(db, CONSUMER, nats_server, applying(fail), streams=names, backoff=(5.0,)))
    try:
        await until(lambda: settled(js, names))  # within the first pause: none was tried again
    finally:
        await stop()
    letters = await list_dead_letters(js, names)
    assert [(x.event_id, x.deliveries) for x in letters] == [("seq-1", 1), ("e1", 1), (poisoned, 1)]
    assert letters[0].error.startswith("Poison: not a valid event") and letters[2].error == "Poison: never"
    assert await applied(db) == [fine]


async def test_a_replayed_dead_letter_applies_once_and_leaves_the_list(db, js, names, nats_server):
    broken = True
    ids = await publish(js, names, 1, 13)
    handlers = applying(lambda p: RuntimeError("broken") if broken and p.amount_cents == 13 else None)
    stop = await running(Consumer(db, CONSUMER, nats_server, handlers, streams=names, backoff=(0.1,),
                                  max_deliveries=2))
    try:
        await until(lambda: settled(js, names))
        [letter] = await list_dead_letters(js, names)
        broken = False  # the handler mended
        assert await replay(js, names, letter.id)
        assert not await replay(js, names, letter.id) and not await replay(js, names, "x")
        await until(lambda: applied_count(db, 2))
        await asyncio.sleep(0.3)
    finally:
        await stop()
    assert await applied(db) == sorted(ids)
    assert await list_dead_letters(js, names) == []


async def applied_count(db: Database, n: int) -> bool:
    return len(await applied(db)) >= n


class Cuttable:
    """A TCP proxy to the PostgreSQL server that can be cut (its connections dropped, new ones refused) and mended:
    a database outage."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def mend(self) -> None:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self.writers += [writer, up_writer]
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        self.server = await asyncio.start_server(handle, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_a_database_outage_dead_letters_nothing_and_the_events_apply_once_it_is_back(
        db, js, names, nats_server, settings):
    real = make_url(settings.database_url)
    proxy = Cuttable((real.host or "127.0.0.1", real.port or 5432))
    await proxy.mend()
    through = await database(Settings(database_url=real.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)), CONSUMER)
    stop = await running(Consumer(through, CONSUMER, nats_server, applying(), streams=names, ack_wait=1.0,
                                  backoff=(0.1,), max_deliveries=2))
    try:
        first = await publish(js, names, 1)
        await until(lambda: applied_count(db, 1))
        await proxy.cut()
        during = await publish(js, names, 2, 3, 4)
        await asyncio.sleep(4)  # many times what two deliveries with their backoff take
        await proxy.mend()
        await until(lambda: applied_count(db, 4), seconds=20)
        await until(lambda: settled(js, names))
    finally:
        await stop()
        await through.dispose()
        await proxy.cut()
    assert await applied(db) == sorted(first + during)
    assert await list_dead_letters(js, names) == []


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_a_consumer_waits_out_the_broker_and_goes_on(db, own_nats):
    names = Streams("own")
    own_nats.start()
    nc = await nats.connect(own_nats.url, connect_timeout=2, max_reconnect_attempts=50, reconnect_time_wait=0.2)
    js = nc.jetstream()
    try:
        await until(lambda: _added(js, names))
        first = await publish(js, names, 1, 2)
        stop = await running(Consumer(db, CONSUMER, own_nats.url, applying(), streams=names))
        try:
            await until(lambda: applied_count(db, 2))
            own_nats.stop()
            await asyncio.sleep(1.0)  # it fails, pauses, tries again
            own_nats.start()
            await until(lambda: _connected(nc))
            later = await publish(js, names, 3, 4)
            await until(lambda: applied_count(db, 4))
        finally:
            await stop()
    finally:
        await nc.close()
    assert await applied(db) == sorted(first + later)


async def _added(js: Any, names: Streams) -> bool:
    try:
        await js.add_stream(name=names.events, subjects=[f"{names.events_prefix}.>"])
    except (OSError, nats.errors.Error):
        return False
    return True


async def _connected(nc: Any) -> bool:
    return bool(nc.is_connected)


async def test_each_event_is_applied_in_a_span_of_the_trace_that_made_it(db, js, names, nats_server):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    seen: list[int] = []

    def fail(_: PaymentCharged) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)
        return None

    await publish(js, names, 1, traceparent=parent)
    stop = await running(Consumer(db, CONSUMER, nats_server, applying(fail), streams=names))
    try:
        await until(lambda: settled(js, names))
    finally:
        await stop()
    expected = telemetry.span_context(parent)
    assert expected is not None and seen == [expected.trace_id]
