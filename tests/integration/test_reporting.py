"""The reporting read models, built by the consumer from real envelopes on the real NATS server: the sales report
and the order timelines are the same in whatever order and however often the events arrive, and a rebuild from the
stream gives back exactly the tables the live consumer made."""

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest

from sagashop.events import inbox
from sagashop.events.catalog import (
    Item,
    OrderApproved,
    OrderCancelled,
    OrderPlaced,
    OrderRejected,
    Payload,
    PaymentCharged,
    PaymentRefunded,
    PricedItem,
    ShipmentCancelled,
    ShipmentCreated,
    StockReleased,
    StockReserved,
    UserRegistered,
)
from sagashop.events.consumer import Consumer
from sagashop.events.delivery import Delivery, apply_all
from sagashop.events.envelope import Envelope, Metadata
from sagashop.events.streams import Streams
from sagashop.kit.db import Database
from sagashop.kit.errors import Invalid
from sagashop.kit.grpcclient import Dependency
from sagashop.v1 import reporting_pb2 as pb
from sagashop.v1 import reporting_pb2_grpc
from services.reporting.repository import HANDLERS, READ_MODELS, clear
from services.reporting.servicer import CONSUMER, ReportingServicer
from tests.integration.test_consumer import settled, until

DAY = datetime(2031, 3, 9, 10, tzinfo=UTC)
NEXT_DAY = DAY + timedelta(days=1)


def event(payload: Payload, at: datetime) -> tuple[str, bytes]:
    made = Envelope[Any](event_id=uuid.uuid4().hex, event_type=payload.event_type, event_version=1, occurred_at=at,
                         metadata=Metadata(correlation_id=getattr(payload, "order_id", None)), payload=payload)
    return payload.event_type, made.model_dump_json().encode()


def order(order_id: str, **fields: Any) -> dict[str, Any]:
    lines = [PricedItem(sku="LAMP", quantity=2, unit_price_cents=1500), PricedItem(sku="MUG", quantity=1,
                                                                                  unit_price_cents=800)]
    return {"order_id": order_id, "user_id": "u1", "lines": lines, "total_cents": 3800, "currency": "EUR", **fields}


def workload() -> list[tuple[str, bytes]]:
    """An approved order, one approved then cancelled the next day, two rejected (with their compensations), a
    reservation that expired, a sign-up (no handler)."""
    items = [Item(sku="LAMP", quantity=2)]
    return [
        event(UserRegistered(user_id="u1", email="a@b.c", name="A"), DAY),
        event(OrderPlaced(**order("o1", country="FR")), DAY),
        event(StockReserved(reservation_id="r1", order_id="o1", lines=items), DAY + timedelta(seconds=1)),
        event(PaymentCharged(payment_id="p1", order_id="o1", amount_cents=3800, currency="EUR"),
              DAY + timedelta(seconds=2)),
        event(ShipmentCreated(shipment_id="s1", order_id="o1", tracking_number="T1", country="FR", lines=items),
              DAY + timedelta(seconds=3)),
        event(OrderApproved(**order("o1", charged_cents=3800, tracking_number="T1")), DAY + timedelta(seconds=4)),
        event(OrderApproved(**order("o2", charged_cents=3800, tracking_number="T2")), DAY),
        event(OrderCancelled(**order("o2")), NEXT_DAY),
        event(ShipmentCancelled(shipment_id="s2", order_id="o2", tracking_number="T2"), NEXT_DAY),
        event(PaymentRefunded(payment_id="p2", order_id="o2", amount_cents=3800, currency="EUR"), NEXT_DAY),
        event(StockReleased(reservation_id="r3", order_id="o3", lines=items, reason="released"), DAY),
        event(OrderRejected(**order("o3", failure_reason="payment_declined", refunded_cents=0)), DAY),
        event(OrderRejected(**order("o4", failure_reason="payment_declined", refunded_cents=0)), DAY),
        event(OrderRejected(**order("o5", failure_reason="shipping_rejected", refunded_cents=3800)), DAY),
        event(StockReleased(reservation_id="r6", order_id="o6", lines=items, reason="expired"), DAY),
    ]


@pytest.fixture
def names(event_streams: Streams) -> Streams:
    return event_streams


@pytest.fixture
async def reporting(grpc_service, names, nats_server) -> tuple[Dependency, Database]:
    made: list[Database] = []

    def servicer(db: Database) -> ReportingServicer:
        made.append(db)
        return ReportingServicer(db, nats_server, names)

    client = await grpc_service("reporting", reporting_pb2_grpc.add_ReportingServiceServicer_to_server, servicer,
                                reporting_pb2_grpc.ReportingServiceStub, "sagashop.v1.ReportingService")
    return client, made[0]


async def consume(db: Database, names: Streams, url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publishes the messages (a repeat too: no Nats-Msg-Id) and lets a consumer apply them all."""
    nc = await nats.connect(url, connect_timeout=2)
    js = nc.jetstream()
    for event_type, data in messages:
        await js.publish(names.subject(event_type), data)
    task = asyncio.create_task(Consumer(db, CONSUMER, url, HANDLERS, streams=names).run())
    try:
        await until(lambda: settled(js, names))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await nc.close()


async def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    def read(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
        return {t.name: sorted(tuple(map(str, row)) for row in conn.execute(t.select())) for t in READ_MODELS}

    return await db.autocommit(read)


async def report(client: Dependency, first: str, last: str) -> pb.SalesReportReply:
    return await client.call(client.stub.SalesReport, pb.SalesReportRequest(from_day=first, to_day=last))


async def test_the_report_counts_each_order_once_in_whatever_order_its_events_come(reporting, names, nats_server):
    client, db = reporting
    messages = workload()
    shuffled = random.sample(messages, len(messages)) + random.sample(messages, 5)  # and some again
    await consume(db, names, nats_server, shuffled)

    day = await report(client, "2031-03-09", "2031-03-09")
    assert [(s.sku, s.currency, s.units, s.revenue_cents) for s in day.items] == [
        ("LAMP", "EUR", 4, 6000), ("MUG", "EUR", 2, 1600)]  # o1 and o2
    assert (day.approved, day.cancelled, dict(day.rejected)) == (
        2, 0, {"payment_declined": 2, "shipping_rejected": 1})
    assert dict(day.compensations) == {"stock_released": 1}  # not the expired reservation
    both = await report(client, "2031-03-09", "2031-03-10")
    assert [(s.sku, s.units, s.revenue_cents) for s in both.items] == [("LAMP", 2, 3000), ("MUG", 1, 800)]
    assert (both.approved, both.cancelled) == (2, 1)
    assert dict(both.compensations) == {"stock_released": 1, "payment_refunded": 1, "shipment_cancelled": 1}
    assert both.as_of == "2031-03-10T10:00:00Z"

    shuffled_tables = await dump(db)
    await db.transaction(lambda conn: (clear(conn), conn.execute(inbox.CLEAR)))
    deliveries = [Delivery.read(data, names.subject(kind), {}, seq, HANDLERS)
                  for seq, (kind, data) in enumerate(messages, 1)]
    await db.transaction(lambda conn: apply_all(conn, [d for d in deliveries if d.handler], CONSUMER))  # in order
    assert await dump(db) == shuffled_tables


async def test_an_orders_events_come_oldest_first_with_their_payload(reporting, names, nats_server):
    client, db = reporting
    await consume(db, names, nats_server, list(reversed(workload())))
    timeline = await client.call(client.stub.OrderEvents, pb.OrderEventsRequest(order_id="o1"))
    assert [e.event_type for e in timeline.items] == [
        "order.placed", "stock.reserved", "payment.charged", "shipment.created", "order.approved"]
    assert json.loads(timeline.items[3].payload_json)["tracking_number"] == "T1"
    assert timeline.items[0].occurred_at == "2031-03-09T10:00:00Z"
    none = await client.call(client.stub.OrderEvents, pb.OrderEventsRequest(order_id="nobody"))
    assert list(none.items) == []


async def test_a_bad_range_is_refused_precisely(reporting):
    client, _ = reporting
    for first, last in (("2031-3-9", "2031-03-09"), ("2031-03-10", "2031-03-09"), ("2030-01-01", "2031-01-02"),
                        ("yesterday", "")):
        with pytest.raises(Invalid) as refused:
            await report(client, first, last)
        assert refused.value.code == "validation_error"
    year = await report(client, "2031-01-01", "2032-01-01")  # 366 days
    assert year.from_day == "2031-01-01" and list(year.items) == []


def poison() -> tuple[str, bytes]:
    """An order.approved whose payload holds only an order id: its handler refuses it, so it is dead-lettered."""
    event_type, data = event(OrderApproved(**order("o9", charged_cents=1, tracking_number="T9")), DAY)
    return event_type, json.dumps({**json.loads(data), "payload": {"order_id": "o9"}}).encode()


async def test_a_rebuild_gives_back_the_same_tables(reporting, names, nats_server):
    """...a dead-lettered event in the stream included: the rebuild leaves it out, as the live consumer did."""
    client, db = reporting
    await consume(db, names, nats_server, [*workload()[:5], poison(), *workload()[5:]])
    before = await dump(db)
    rebuilt = await client.call(client.stub.Rebuild, pb.RebuildRequest(), timeout=30)
    assert rebuilt.events == len(workload()) - 1  # all but the sign-up, which reporting does not read
    assert await dump(db) == before


async def test_a_rebuild_when_every_event_has_aged_out_of_the_stream_gives_empty_models(reporting, names, nats_server):
    client, db = reporting
    await consume(db, names, nats_server, workload())
    nc = await nats.connect(nats_server, connect_timeout=2)
    try:
        await nc.jetstream().purge_stream(names.events)  # as its age limit does: no event left, its sequence kept
    finally:
        await nc.close()
    rebuilt = await client.call(client.stub.Rebuild, pb.RebuildRequest(), timeout=30)
    assert rebuilt.events == 0 and rebuilt.seconds < 5
    assert {table: rows for table, rows in (await dump(db)).items() if rows} == {}
