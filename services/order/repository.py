"""The orders table and the queries on it; every function runs inside the caller's unit of work (kit.db). The
statements are built once, with bind parameters (`p_*`): building one costs more than executing it."""

from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from sagashop.events import outbox
from sagashop.events.catalog import OrderApproved, OrderCancelled, OrderPlaced, OrderRejected, PricedItem
from sagashop.kit.clock import now
from sagashop.kit.db import all_or_nothing, insert_if_absent, one_statement
from sagashop.values import APPROVED, CANCELLED, PENDING, REJECTED, Address, PricedLine

from .domain import Order

metadata = sa.MetaData()
orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.String, primary_key=True), sa.Column("user_id", sa.String),
    sa.Column("status", sa.String), sa.Column("failure_reason", sa.String),
    sa.Column("items", sa.JSON), sa.Column("currency", sa.String), sa.Column("address", sa.JSON),
    sa.Column("payment_status", sa.String), sa.Column("payment_amount_cents", sa.BigInteger),
    sa.Column("tracking_number", sa.String),
    sa.Column("created_at", sa.DateTime(timezone=True)), sa.Column("updated_at", sa.DateTime(timezone=True)),
)
# what a move may change; lines, currency and address are fixed at creation
MOVABLE = ("status", "failure_reason", "payment_status", "payment_amount_cents", "tracking_number", "updated_at")
P = sa.bindparam
BY_ID = sa.select(orders).where(orders.c.id == P("p_id"))
OF_USER = (sa.select(orders).where(orders.c.user_id == P("p_user_id"))
           .order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(P("p_limit")))
OF_USER_AFTER = OF_USER.where(sa.tuple_(orders.c.created_at, orders.c.id) < sa.tuple_(
    P("p_at", type_=orders.c.created_at.type), P("p_id", type_=orders.c.id.type)))
# by dialect: the order, unless one with its id is there already (then no row comes back)
INSERT_IF_ABSENT = insert_if_absent(orders)
# a move, only if the order still has the status it was moved from (every move changes the status)
SAVE_IF = orders.update().where(orders.c.id == P("p_id"), orders.c.status == P("p_was")).values(
    {name: P(f"p_{name}", type_=orders.c[name].type) for name in MOVABLE})
# PostgreSQL only, beside the portable forms of `Orders.add` and `Orders.save`: the change and its event in one
# statement, the event only if the change was made (then a row comes back)
ADD_IF_ABSENT_WITH_EVENT = outbox.after(
    postgresql.insert(orders).values({c.name: P(c.name, type_=c.type) for c in orders.c})
    .on_conflict_do_nothing(index_elements=[orders.c.id]).returning(orders.c.id).cte("placed"))
SAVE_IF_WITH_EVENT = outbox.after(SAVE_IF.returning(orders.c.id).cte("moved"))
# the command that brought an order to a status: its event's cause (the order service gets no idempotency key)
COMMAND = {PENDING: "CreateOrder", APPROVED: "ApproveOrder", REJECTED: "RejectOrder", CANCELLED: "CancelOrder"}


def _order(row: sa.Row[Any]) -> Order:
    fields = dict(row._mapping)
    fields["items"] = tuple(PricedLine(**line) for line in row.items)
    fields["address"] = Address(**row.address)
    return Order(**fields)


class Orders:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.one_statement = one_statement(conn)

    def get(self, order_id: str) -> Order | None:
        row = self.conn.execute(BY_ID, {"p_id": order_id}).first()
        return _order(row) if row else None

    def of_user(self, user_id: str, limit: int, after: tuple[datetime, str] | None = None) -> list[Order]:
        """Up to `limit` of the user's orders, newest first, from the one after (created_at, id) `after` on."""
        if after is None:
            rows = self.conn.execute(OF_USER, {"p_user_id": user_id, "p_limit": limit})
        else:
            rows = self.conn.execute(OF_USER_AFTER, {"p_user_id": user_id, "p_limit": limit, "p_at": after[0],
                                                     "p_id": after[1]})
        return [_order(row) for row in rows]

    def add(self, order: Order) -> Order:
        """Adds the order and its event (order.placed), or, if one with its id exists (a repeat), returns that one
        and writes nothing. On PostgreSQL one statement that does nothing on a conflict, so a first request costs
        one round trip; the portable form inserts the order, then its event, in a transaction."""
        row, placed = asdict(order), _event(order)  # items and address become plain dicts: their JSON form
        if self.one_statement:
            outbox.written(self.conn)
            if self.conn.execute(ADD_IF_ABSENT_WITH_EVENT, {**row, **placed.params()}).first() is not None:
                return order
        else:
            with all_or_nothing(self.conn):
                if self.conn.execute(INSERT_IF_ABSENT[self.conn.dialect.name], row).first() is not None:
                    outbox.write(self.conn, placed)
                    return order
        first = self.get(order.id)
        assert first is not None, "an order is never deleted"
        return first

    def save(self, order: Order, *, was: str) -> Order | None:
        """Writes the outcome of a move, stamped, and its event, if the order's status is still `was`, the one it
        was moved from: on PostgreSQL one conditional statement, in the portable form a conditional update and
        then the event, in a transaction. None if another move came first (nothing written)."""
        saved = replace(order, updated_at=now())
        params = {"p_id": order.id, "p_was": was, **{f"p_{name}": getattr(saved, name) for name in MOVABLE}}
        if self.one_statement:
            outbox.written(self.conn)
            moved = self.conn.execute(SAVE_IF_WITH_EVENT, {**params, **_event(saved).params()}).first() is not None
            return saved if moved else None
        with all_or_nothing(self.conn):
            if self.conn.execute(SAVE_IF, params).rowcount != 1:
                return None
            outbox.write(self.conn, _event(saved))
            return saved


def _event(order: Order) -> outbox.Event:
    """The event of the order as it now stands: placed, or the move that brought it there."""
    state: dict[str, Any] = {
        "order_id": order.id, "user_id": order.user_id, "total_cents": order.total_cents, "currency": order.currency,
        "lines": [PricedItem(sku=i.sku, quantity=i.quantity, unit_price_cents=i.unit_price_cents)
                  for i in order.items]}
    payload: OrderPlaced | OrderApproved | OrderRejected | OrderCancelled
    if order.status == APPROVED:
        payload = OrderApproved(**state, charged_cents=order.payment_amount_cents,
                                tracking_number=order.tracking_number)
    elif order.status == REJECTED:
        payload = OrderRejected(**state, failure_reason=order.failure_reason,
                                refunded_cents=order.payment_amount_cents)
    elif order.status == CANCELLED:
        payload = OrderCancelled(**state)
    else:
        payload = OrderPlaced(**state, country=order.address.country)
    return outbox.event(payload, order.id, correlation_id=order.id, causation_id=COMMAND[order.status],
                        user_id=order.user_id)
