"""The relay publishes a service's outbox to JetStream: in order, in the envelope, once each, whether the broker
was down meanwhile or the relay stopped between a publish and its mark. Each test on a stream and subject prefix
of its own, so tests never see each other's events."""

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.errors import Error as NatsError
from prometheus_client import REGISTRY
from sqlalchemy import text

from sagashop.events.catalog import PaymentCharged
from sagashop.events.envelope import Envelope
from sagashop.events.relay import Relay
from sagashop.events.streams import Streams
from sagashop.kit.db import Database, database
from sagashop.kit.settings import Settings
from services.payment.domain import CHARGE, CHARGED, Payment
from services.payment.repository import Payments
from tests.conftest import missing, unreachable
from tools.local.parts import free_port

NATS_URL = "nats://127.0.0.1:4222"
NATS_SERVER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "nats-server"


class Crash(BaseException):
    """Stops the relay as a kill would: nothing of it catches this."""


@pytest.fixture
async def nats_url() -> str:
    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        await nc.close()
    except (OSError, NatsError, TimeoutError) as e:
        unreachable(f"NATS at {NATS_URL}", e)
    return NATS_URL


@pytest.fixture
async def payment_db(settings: Settings) -> AsyncIterator[Database]:
    db = await database(settings, "payment")
    yield db
    await db.dispose()


@pytest.fixture
def names() -> Streams:
    """Streams and subjects of the test's own."""
    return Streams(f"t{uuid.uuid4().hex[:10]}")


async def charge(db: Database, *keys: str) -> None:
    for key in keys:
        await db.autocommit(lambda conn, key=key: Payments(conn).add_if_absent(
            Payment(key, f"order-{key}", CHARGED, 100, "EUR"), CHARGE))


async def read_back(url: str, names: Streams, expected: int) -> list[Any]:
    """Every message of the stream, through a consumer, once `expected` are there (or after 8 s)."""
    nc = await nats.connect(url, connect_timeout=2)
    try:
        js, stream = nc.jetstream(), names.events
        for _ in range(80):
            try:
                if (await js.stream_info(stream)).state.messages >= expected:
                    break
            except NatsError:
                pass
            await asyncio.sleep(0.1)
        held = (await js.stream_info(stream)).state.messages
        sub = await js.pull_subscribe(f"{names.events_prefix}.>", stream=stream)
        messages = await sub.fetch(held, timeout=2) if held else []
        await js.delete_stream(stream)
        return messages
    finally:
        await nc.close()


async def running(relay: Relay) -> Callable[[], Awaitable[None]]:
    task = asyncio.create_task(relay.run())

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return stop


async def unpublished(db: Database) -> int:
    return int(await db.autocommit(lambda conn: conn.execute(text(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar()))


async def published(db: Database) -> None:
    """Once the relay has marked every row published (at most 5 s)."""
    for _ in range(50):
        if await unpublished(db) == 0:
            return
        await asyncio.sleep(0.1)


async def test_the_relay_publishes_the_outbox_in_order_in_the_envelope(payment_db, nats_url, names):
    await charge(payment_db, "k1", "k2", "k3")
    stop = await running(Relay(payment_db, "payment", nats_url, streams=names, poll_seconds=30))
    try:
        await published(payment_db)
        await charge(payment_db, "k4", "k5")  # while it waits: a commit wakes it, long before its next poll
        messages = await read_back(nats_url, names, 5)
    finally:
        await stop()

    events = [Envelope[PaymentCharged].model_validate_json(m.data) for m in messages]
    assert [e.payload.payment_id for e in events] == ["k1", "k2", "k3", "k4", "k5"]
    assert [m.subject for m in messages] == [names.subject("payment.charged")] * 5
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [e.event_id for e in events]
    assert events[0].payload.order_id == "order-k1" and events[0].metadata.causation_id == "k1"
    assert await unpublished(payment_db) == 0


class OwnNats:
    """A JetStream nats-server of the test's own on a free port: its URL is known before it runs."""

    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.url, self.data = f"nats://127.0.0.1:{self.port}", data
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(NATS_SERVER), "-js", "-sd", str(self.data), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[OwnNats]:
    if not NATS_SERVER.exists():
        missing(f"{NATS_SERVER} is missing", "run `make setup`")
    server = OwnNats(tmp_path / "jetstream")
    yield server
    server.stop()


def depth(service: str) -> float | None:
    return REGISTRY.get_sample_value("sagashop_outbox_depth", {"service": service})


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_events_wait_while_the_broker_is_down_then_all_arrive_once(payment_db, own_nats, names):
    stop = await running(Relay(payment_db, "payment", own_nats.url, streams=names))
    try:
        await charge(payment_db, "k1", "k2", "k3")
        await asyncio.sleep(1.2)  # tries, fails, backs off; measures what waits
        assert await unpublished(payment_db) == 3
        assert depth("payment") == 3
        own_nats.start()
        messages = await read_back(own_nats.url, names, 3)
    finally:
        await stop()
    assert [Envelope[PaymentCharged].model_validate_json(m.data).payload.payment_id for m in messages] == [
        "k1", "k2", "k3"]
    assert await unpublished(payment_db) == 0


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_a_relay_stopped_between_publish_and_mark_publishes_again_and_the_stream_keeps_one(
        payment_db, nats_url, names):
    await charge(payment_db, "k1", "k2")

    def crash(point: str) -> None:
        raise Crash(point)

    crashing = asyncio.create_task(Relay(payment_db, "payment", nats_url, streams=names,
                                         crash_point=crash).run())
    with pytest.raises(Crash):
        await asyncio.wait_for(crashing, 10)
    assert await unpublished(payment_db) == 2  # published, never marked

    stop = await running(Relay(payment_db, "payment", nats_url, streams=names))
    try:
        await charge(payment_db, "k3")
        await published(payment_db)
        messages = await read_back(nats_url, names, 3)
    finally:
        await stop()
    assert [Envelope[PaymentCharged].model_validate_json(m.data).payload.payment_id for m in messages] == [
        "k1", "k2", "k3"]


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_of_two_relays_on_one_postgres_schema_one_publishes(settings, payment_db, nats_url, names):
    other = await database(settings, "payment")  # a second replica of the service
    stops = [await running(Relay(db, "payment", nats_url, streams=names))
             for db in (payment_db, other)]
    try:
        await charge(payment_db, "k1", "k2")
        await charge(other, "k3", "k4")
        await published(payment_db)
        holders = await payment_db.autocommit(lambda conn: conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"  # in this test's database only:
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).scalar())
        messages = await read_back(nats_url, names, 4)
    finally:
        for stop in stops:
            await stop()
        await other.dispose()
    assert holders == 1
    assert [Envelope[PaymentCharged].model_validate_json(m.data).payload.payment_id for m in messages] == [
        "k1", "k2", "k3", "k4"]
