"""The shipments table and the queries on it; every function runs inside the caller's unit of work (kit.db). The
statements are built once, with bind parameters (`p_*`): building one costs more than executing it."""

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from sagashop.events import outbox
from sagashop.events.catalog import Item, ShipmentCancelled, ShipmentCreated
from sagashop.kit.clock import now
from sagashop.kit.db import all_or_nothing, insert_if_absent, one_statement
from sagashop.values import Line

from .domain import CANCELLED, CREATED, Shipment

metadata = sa.MetaData()
shipments = sa.Table(
    "shipments", metadata,
    sa.Column("idempotency_key", sa.String, primary_key=True), sa.Column("order_id", sa.String),
    sa.Column("status", sa.String), sa.Column("tracking_number", sa.String), sa.Column("country", sa.String),
    sa.Column("lines", sa.JSON),
    sa.Column("created_at", sa.DateTime(timezone=True)), sa.Column("updated_at", sa.DateTime(timezone=True)),
)
P = sa.bindparam
BY_KEY = sa.select(shipments).where(shipments.c.idempotency_key == P("p_key"))
LIVE = (sa.select(shipments).where(shipments.c.order_id == P("p_order_id"), shipments.c.status == CREATED)
        .order_by(shipments.c.created_at))
INSERT = shipments.insert()
INSERT_IF_ABSENT = insert_if_absent(shipments)  # by dialect
# PostgreSQL only, beside the portable form of `Shipments.add_if_absent`: the shipment and its event in one
# statement, the event only if the shipment is new (then a row comes back)
INSERT_IF_ABSENT_WITH_EVENT = outbox.after(
    postgresql.insert(shipments).values({c.name: P(c.name, type_=c.type) for c in shipments.c})
    .on_conflict_do_nothing(index_elements=[shipments.c.idempotency_key]).returning(shipments.c.idempotency_key)
    .cte("created"))
SET_STATUS = shipments.update().where(shipments.c.idempotency_key == P("p_key")).values(
    status=P("p_status"), updated_at=P("p_at"))


def _shipment(row: sa.Row[Any]) -> Shipment:
    lines = tuple(Line(sku, quantity) for sku, quantity in row.lines)
    return Shipment(row.idempotency_key, row.order_id, row.status, row.tracking_number or "", row.country, lines)


class Shipments:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.one_statement = one_statement(conn)

    def shipment(self, key: str) -> Shipment | None:
        row = self.conn.execute(BY_KEY, {"p_key": key}).first()
        return _shipment(row) if row else None

    def live(self, order_id: str) -> list[Shipment]:
        return [_shipment(row) for row in self.conn.execute(LIVE, {"p_order_id": order_id})]

    def add(self, s: Shipment) -> Shipment:
        self.conn.execute(INSERT, _row(s))
        return s

    def add_if_absent(self, s: Shipment) -> bool:
        """Adds the shipment and its event (shipment.created), unless one with its key is there already
        (then False, nothing written): on PostgreSQL in one statement, in the portable form in a transaction."""
        created = _event(s)
        if self.one_statement:
            outbox.written(self.conn)
            return self.conn.execute(INSERT_IF_ABSENT_WITH_EVENT, {**_row(s), **created.params()}).first() is not None
        with all_or_nothing(self.conn):
            if self.conn.execute(INSERT_IF_ABSENT[self.conn.dialect.name], _row(s)).first() is None:
                return False
            outbox.write(self.conn, created)
            return True

    def first(self, key: str) -> Shipment:
        """The shipment a key made (one is never deleted)."""
        found = self.shipment(key)
        assert found is not None, f"no shipment {key!r}"
        return found

    def cancel(self, s: Shipment) -> Shipment:
        """Cancels the shipment, with its event, in the caller's transaction."""
        self.conn.execute(SET_STATUS, {"p_key": s.key, "p_status": CANCELLED, "p_at": now()})
        cancelled = replace(s, status=CANCELLED)
        outbox.write(self.conn, _event(cancelled))
        return cancelled


def _event(s: Shipment) -> outbox.Event:
    payload: ShipmentCreated | ShipmentCancelled
    if s.status == CANCELLED:
        payload = ShipmentCancelled(shipment_id=s.key, order_id=s.order_id, tracking_number=s.tracking_number)
    else:
        payload = ShipmentCreated(shipment_id=s.key, order_id=s.order_id, tracking_number=s.tracking_number,
                                  country=s.country, lines=[Item(sku=line.sku, quantity=line.quantity)
                                                            for line in s.lines])
    return outbox.event(payload, s.key, correlation_id=s.order_id, causation_id=s.key)


def _row(s: Shipment) -> dict[str, object]:
    moment = now()
    return {"idempotency_key": s.key, "order_id": s.order_id, "status": s.status,
            "tracking_number": s.tracking_number or None,  # tombstones have none; the unique index skips NULLs
            "country": s.country, "lines": [[line.sku, line.quantity] for line in s.lines],
            "created_at": moment, "updated_at": moment}
