"""Each context's changes write their event to the service's outbox with the change: exactly one per change, in
the same transaction (or statement), none on an idempotent repeat, none when the change fails or rolls back. On
each database and each form (kit.db.one_statement)."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from sagashop.kit.db import Database
from sagashop.values import Address, Line, PricedLine
from services.inventory.domain import Product
from services.inventory.repository import HELD, Inventory, Reservation
from services.order.domain import Order
from services.order.repository import Orders
from services.payment.domain import CHARGE, CHARGED, Payment
from services.payment.repository import Payments
from services.shipping.domain import CREATED, Shipment
from services.shipping.repository import Shipments
from services.user.domain import CUSTOMER, User
from services.user.repository import Users
from tests.integration.forms import each_form

pytestmark = each_form
AT = datetime(2030, 1, 1, tzinfo=UTC)
ORDER = Order.create("order-1", "user-1", [PricedLine("LAMP", 2, 1500)], "EUR",
                    Address("Ada", "1 Main St", "Berlin", "10115", "DE"), at=AT)
SHIPMENT = Shipment("ship-1", "order-1", CREATED, "SS0001", "DE", (Line("LAMP", 2),))
HOLD = Reservation("res-1", "order-1", HELD, (Line("LAMP", 2), Line("SOFA", 1)))


class Refused(Exception):
    pass


@dataclass(frozen=True)
class Change:
    service: str
    event_type: str
    aggregate_id: str
    make: Callable[[Connection], object]  # the change; run twice, the second a repeat
    before: Callable[[Connection], object] = lambda conn: None  # what the change needs there first (no events)


def stocked(conn: Connection) -> None:
    for sku in ("LAMP", "SOFA"):
        conn.execute(text("INSERT INTO products (sku, name, price_cents, currency, available, reserved, sold) "
                          "VALUES (:sku, :sku, 100, 'EUR', 5, 0, 0)"), {"sku": sku})


def reserved(conn: Connection) -> None:
    stocked(conn)
    Inventory(conn).reserve(HOLD)
    conn.execute(text("DELETE FROM outbox"))


def charged(conn: Connection) -> None:
    Payments(conn).add_if_absent(Payment("pay-1", "order-1", CHARGED, 3000, "EUR"), CHARGE)
    conn.execute(text("DELETE FROM outbox"))


def placed(conn: Connection) -> None:
    Orders(conn).add(ORDER)
    conn.execute(text("DELETE FROM outbox"))


def shipped(conn: Connection) -> None:
    Shipments(conn).add_if_absent(SHIPMENT)
    conn.execute(text("DELETE FROM outbox"))


def approve(conn: Connection) -> object:
    """As OrderServicer._move does it: a move that changes nothing (a repeat) is not saved."""
    order = Orders(conn).get("order-1")
    assert order is not None
    approved = order.approve("SS0001", 3000)
    return order if approved is order else Orders(conn).save(approved, was=order.status)


def refund(conn: Connection) -> object:
    done = Payments(conn).first("pay-1")
    return Payments(conn).refund(done, "REFUNDED") if done.status == CHARGED else None


def release(conn: Connection) -> object:
    held = Inventory(conn).reservation_for_update("res-1")
    assert held is not None
    return Inventory(conn).release(held) if held.state == HELD else None


def cancel_shipment(conn: Connection) -> object:
    found = Shipments(conn).first("ship-1")
    return Shipments(conn).cancel(found) if found.status == CREATED else None


CHANGES = [
    Change("payment", "payment.charged", "pay-1",
           lambda conn: Payments(conn).add_if_absent(Payment("pay-1", "order-1", CHARGED, 3000, "EUR"), CHARGE)),
    Change("payment", "payment.refunded", "pay-1", refund, charged),
    Change("order", "order.placed", "order-1", lambda conn: Orders(conn).add(ORDER)),
    Change("order", "order.approved", "order-1", approve, placed),
    Change("inventory", "stock.reserved", "res-1", lambda conn: Inventory(conn).reserve(HOLD), stocked),
    Change("inventory", "stock.committed", "res-1", lambda conn: Inventory(conn).commit_held("res-1"),
           reserved),
    Change("inventory", "stock.released", "res-1", release, reserved),
    Change("inventory", "product.changed", "DESK", lambda conn: Inventory(conn).upsert(
        Product("DESK", "Desk", 9900, "EUR", 3), only_if_absent=True)),
    Change("shipping", "shipment.created", "ship-1", lambda conn: Shipments(conn).add_if_absent(SHIPMENT)),
    Change("shipping", "shipment.cancelled", "ship-1", cancel_shipment, shipped),
    Change("user", "user.registered", "user-1", lambda conn: Users(conn).add(
        User("user-1", "ada@example.com", "Ada", (CUSTOMER,), "hash")) if Users(conn).by_id("user-1") is None
        else None),
]
IDS = [change.event_type for change in CHANGES]


async def events_in(db: Database) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await db.autocommit(lambda conn: conn.execute(text(
        "SELECT event_type, aggregate_id, body FROM outbox ORDER BY seq")).all())
    return [(row.event_type, row.aggregate_id, json.loads(row.body)) for row in rows]


@pytest.mark.parametrize("change", CHANGES, ids=IDS)
async def test_a_change_writes_one_event_and_its_repeat_none(open_db, change):
    db = await open_db(change.service)
    await db.transaction(change.before)
    await db.autocommit(change.make)  # how the servicers run the one-statement forms: no transaction around
    await db.transaction(change.make)  # the repeat (same key): changes nothing, writes nothing

    [(event_type, aggregate_id, body)] = await events_in(db)
    assert (event_type, aggregate_id, body["event_type"], body["event_version"]) == (
        change.event_type, change.aggregate_id, change.event_type, 1)
    assert len(body["event_id"]) == 32 and body["occurred_at"].endswith("Z")


@pytest.mark.parametrize("change", CHANGES, ids=IDS)
async def test_a_change_that_rolls_back_leaves_no_event(open_db, change):
    db = await open_db(change.service)
    await db.transaction(change.before)

    def change_then_fail(conn: Connection) -> None:
        assert change.make(conn) is not False
        raise Refused

    with pytest.raises(Refused):
        await db.transaction(change_then_fail)
    assert await events_in(db) == []
    await db.autocommit(change.make)  # the change was undone with its event: it is made anew
    assert [e[0] for e in await events_in(db)] == [change.event_type]


async def test_a_charge_whose_ledger_line_is_refused_writes_no_event(open_db):
    db = await open_db("payment")
    payment = Payment("pay-1", "order-1", CHARGED, 3000, "EUR")
    await db.autocommit(lambda conn: Payments(conn).record(payment, CHARGE))  # its one charge line, already

    with pytest.raises(IntegrityError):
        await db.autocommit(lambda conn: Payments(conn).add_if_absent(payment, CHARGE))
    assert await events_in(db) == []


async def test_the_events_carry_the_state_of_what_changed(open_db):
    inventory, order = await open_db("inventory"), await open_db("order")
    await inventory.transaction(reserved)
    await inventory.autocommit(lambda conn: Inventory(conn).commit_held("res-1"))
    await order.autocommit(lambda conn: Orders(conn).add(ORDER))
    await order.autocommit(approve)

    [(_, _, committed)] = await events_in(inventory)
    assert committed["payload"] == {"reservation_id": "res-1", "order_id": "order-1",
                                    "lines": [{"sku": "LAMP", "quantity": 2}, {"sku": "SOFA", "quantity": 1}]}
    assert committed["metadata"]["correlation_id"] == "order-1"
    placed_event, approved = [body for _, _, body in await events_in(order)]
    assert placed_event["payload"]["country"] == "DE"
    assert approved["payload"] == {
        "order_id": "order-1", "user_id": "user-1", "lines": [{"sku": "LAMP", "quantity": 2, "unit_price_cents": 1500}],
        "total_cents": 3000, "currency": "EUR", "charged_cents": 3000, "tracking_number": "SS0001"}
    assert approved["metadata"] == {"correlation_id": "order-1", "causation_id": "ApproveOrder", "user_id": "user-1",
                                    "traceparent": None}
