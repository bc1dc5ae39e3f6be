"""The reporting read models, their queries, and the handlers that apply each event to them (inside the
consumer's transaction: kit's events.consumer). Every write adds to a count or inserts a row keyed by the event,
so the order events arrive in does not matter (domain.py); the consumer's inbox sees that each applies once."""

from datetime import UTC, date
from typing import Any

import sqlalchemy as sa
from pydantic import ConfigDict
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from sagashop.events.catalog import EVENTS, OrderApproved, OrderCancelled, OrderRejected, Payload, PricedItem
from sagashop.events.consumer import Handler, Handlers
from sagashop.events.envelope import Envelope

from .domain import (
    APPROVED,
    CANCELLED,
    PAYMENT_REFUNDED,
    REJECTED,
    SHIPMENT_CANCELLED,
    STOCK_RELEASED,
    Report,
    Sales,
    day_of,
)

metadata = sa.MetaData()
order_events = sa.Table(
    "order_events", metadata,
    sa.Column("event_id", sa.String, primary_key=True), sa.Column("order_id", sa.String),
    sa.Column("event_type", sa.String), sa.Column("occurred_at", sa.DateTime(timezone=True), index=True),
    sa.Column("payload", sa.Text),
)
sales = sa.Table(
    "sales", metadata,
    sa.Column("day", sa.Date, primary_key=True), sa.Column("sku", sa.String, primary_key=True),
    sa.Column("currency", sa.String, primary_key=True), sa.Column("units", sa.BigInteger),
    sa.Column("revenue_cents", sa.BigInteger),
)
outcomes = sa.Table(
    "outcomes", metadata,
    sa.Column("day", sa.Date, primary_key=True), sa.Column("outcome", sa.String, primary_key=True),
    sa.Column("reason", sa.String, primary_key=True), sa.Column("orders", sa.BigInteger),
)
compensations = sa.Table(
    "compensations", metadata,
    sa.Column("day", sa.Date, primary_key=True), sa.Column("kind", sa.String, primary_key=True),
    sa.Column("n", sa.BigInteger),
)
READ_MODELS = (order_events, sales, outcomes, compensations)
P = sa.bindparam


def _by_dialect(table: sa.Table, **on_conflict: Any) -> dict[str, sa.Insert]:
    """An insert into `table` that, on a row with its key there already, sets the columns `on_conflict` maps to
    f(current column, proposed column); nothing when none is given. (ON CONFLICT comes from a dialect's insert.)"""
    made: dict[str, sa.Insert] = {}
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite)):
        insert = dialect.insert(table)
        key = list(table.primary_key.columns)
        made[name] = (insert.on_conflict_do_update(index_elements=key, set_={
            column: f(table.c[column], insert.excluded[column]) for column, f in on_conflict.items()})
            if on_conflict else insert.on_conflict_do_nothing(index_elements=key))
    return made


def _add(current: Any, proposed: Any) -> Any:
    return current + proposed


RECORD_EVENT = _by_dialect(order_events)
ADD_SALES = _by_dialect(sales, units=_add, revenue_cents=_add)
ADD_OUTCOME = _by_dialect(outcomes, orders=_add)
ADD_COMPENSATION = _by_dialect(compensations, n=_add)

SALES_IN = (sa.select(sales.c.sku, sales.c.currency, sa.func.sum(sales.c.units).label("units"),
                      sa.func.sum(sales.c.revenue_cents).label("revenue_cents"))
            .where(sales.c.day.between(P("p_from"), P("p_to"))).group_by(sales.c.sku, sales.c.currency)
            .order_by(sales.c.sku, sales.c.currency))
OUTCOMES_IN = (sa.select(outcomes.c.outcome, outcomes.c.reason, sa.func.sum(outcomes.c.orders).label("orders"))
               .where(outcomes.c.day.between(P("p_from"), P("p_to"))).group_by(outcomes.c.outcome, outcomes.c.reason))
COMPENSATIONS_IN = (sa.select(compensations.c.kind, sa.func.sum(compensations.c.n).label("n"))
                    .where(compensations.c.day.between(P("p_from"), P("p_to"))).group_by(compensations.c.kind))
AS_OF = sa.select(sa.func.max(order_events.c.occurred_at))  # the newest event applied (by its index)
EVENTS_OF = (sa.select(order_events).where(order_events.c.order_id == P("p_order_id"))
             .order_by(order_events.c.occurred_at, order_events.c.event_id))


class AboutOrder(Payload):
    """Any event about an order, read whole: its payload is kept as its producer wrote it (the order's timeline);
    the handlers of the events that count read it again with their own model."""

    model_config = ConfigDict(extra="allow", frozen=True)
    order_id: str


def _record(conn: Connection, event: Envelope[Any]) -> None:
    """The event in the order's timeline."""
    conn.execute(RECORD_EVENT[conn.dialect.name], {
        "event_id": event.event_id, "order_id": event.payload.order_id, "event_type": event.event_type,
        "occurred_at": event.occurred_at.astimezone(UTC), "payload": event.payload.model_dump_json()})


def _sold(conn: Connection, day: date, lines: list[PricedItem], currency: str, sign: int) -> None:
    if lines:
        conn.execute(ADD_SALES[conn.dialect.name], [
            {"day": day, "sku": line.sku, "currency": currency, "units": sign * line.quantity,
             "revenue_cents": sign * line.quantity * line.unit_price_cents} for line in lines])


def _outcome(conn: Connection, day: date, outcome: str, reason: str = "") -> None:
    conn.execute(ADD_OUTCOME[conn.dialect.name], {"day": day, "outcome": outcome, "reason": reason, "orders": 1})


def _compensation(conn: Connection, day: date, kind: str) -> None:
    conn.execute(ADD_COMPENSATION[conn.dialect.name], {"day": day, "kind": kind, "n": 1})


def approved(conn: Connection, event: Envelope[Any]) -> None:
    _record(conn, event)
    order, day = OrderApproved.model_validate(event.payload.model_dump()), day_of(event.occurred_at)
    _sold(conn, day, order.lines, order.currency, +1)
    _outcome(conn, day, APPROVED)


def cancelled(conn: Connection, event: Envelope[Any]) -> None:
    _record(conn, event)
    order, day = OrderCancelled.model_validate(event.payload.model_dump()), day_of(event.occurred_at)
    _sold(conn, day, order.lines, order.currency, -1)
    _outcome(conn, day, CANCELLED)


def rejected(conn: Connection, event: Envelope[Any]) -> None:
    _record(conn, event)
    order = OrderRejected.model_validate(event.payload.model_dump())
    _outcome(conn, day_of(event.occurred_at), REJECTED, order.failure_reason)


def compensated(kind: str, *, unless: tuple[str, str] | None = None) -> Handler:
    """A handler counting a compensation of `kind` (not when the payload's field `unless[0]` is `unless[1]`)."""

    def handle(conn: Connection, event: Envelope[Any]) -> None:
        _record(conn, event)
        if unless is None or event.payload.model_dump().get(unless[0]) != unless[1]:
            _compensation(conn, day_of(event.occurred_at), kind)

    return handle


COUNTED: dict[str, Handler] = {
    "order.approved": approved, "order.cancelled": cancelled, "order.rejected": rejected,
    # a reservation its saga released (a compensation), not one held too long (the sweeper's)
    "stock.released": compensated(STOCK_RELEASED, unless=("reason", "expired")),
    "payment.refunded": compensated(PAYMENT_REFUNDED), "shipment.cancelled": compensated(SHIPMENT_CANCELLED),
}
HANDLERS: Handlers = {kind.event_type: (AboutOrder, COUNTED.get(kind.event_type, _record))
                      for kind in EVENTS if "order_id" in kind.model_fields}


def clear(conn: Connection) -> None:
    """Every read model emptied (a rebuild's first step)."""
    for table in READ_MODELS:
        conn.execute(table.delete())


class Reports:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def report(self, first: date, last: date) -> Report:
        days = {"p_from": first, "p_to": last}
        items = [Sales(r.sku, r.currency, int(r.units), int(r.revenue_cents))
                 for r in self.conn.execute(SALES_IN, days) if r.units or r.revenue_cents]
        orders = {(r.outcome, r.reason): int(r.orders) for r in self.conn.execute(OUTCOMES_IN, days)}
        return Report(
            first, last, self.conn.execute(AS_OF).scalar(), items, approved=orders.get((APPROVED, ""), 0),
            cancelled=orders.get((CANCELLED, ""), 0),
            rejected={reason: n for (outcome, reason), n in orders.items() if outcome == REJECTED},
            compensations={r.kind: int(r.n) for r in self.conn.execute(COMPENSATIONS_IN, days)})

    def events(self, order_id: str) -> list[sa.Row[Any]]:
        return list(self.conn.execute(EVENTS_OF, {"p_order_id": order_id}))

