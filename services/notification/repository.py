"""The notification tables and the queries on them; every function runs inside the caller's unit of work (the
consumer's transaction, or a servicer's read). What the events told us is kept only as far as an email needs it."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sagashop.kit.clock import now
from sagashop.kit.db import insert_if_absent

from .domain import Customer, Email, Sent

metadata = sa.MetaData()
customers = sa.Table(
    "customers", metadata,
    sa.Column("user_id", sa.String, primary_key=True), sa.Column("email", sa.String), sa.Column("name", sa.String))
orders = sa.Table(
    "orders", metadata, sa.Column("order_id", sa.String, primary_key=True), sa.Column("user_id", sa.String))
approved = sa.Table("approved", metadata, sa.Column("order_id", sa.String, primary_key=True))
shipments = sa.Table(
    "shipments", metadata,
    sa.Column("order_id", sa.String, primary_key=True), sa.Column("tracking_number", sa.String))
notifications = sa.Table(
    "notifications", metadata,
    sa.Column("id", sa.String, primary_key=True), sa.Column("order_id", sa.String), sa.Column("kind", sa.String),
    sa.Column("to_address", sa.String), sa.Column("subject", sa.String),
    sa.Column("sent_at", sa.DateTime(timezone=True)), sa.Column("event_id", sa.String),
)
P = sa.bindparam


# by table, then dialect: insert a row unless one with its key is there (then no row comes back)
ADD = {table.name: insert_if_absent(table) for table in (customers, orders, approved, shipments, notifications)}
CUSTOMER = sa.select(customers).where(customers.c.user_id == P("p_user_id"))
USER_OF = sa.select(orders.c.user_id).where(orders.c.order_id == P("p_order_id"))
IS_APPROVED = sa.select(approved.c.order_id).where(approved.c.order_id == P("p_order_id"))
TRACKING = sa.select(shipments.c.tracking_number).where(shipments.c.order_id == P("p_order_id"))
LOCK_ORDER = sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))")
OF_ORDER = (sa.select(notifications).where(notifications.c.order_id == P("p_order_id"))
            .order_by(notifications.c.sent_at, notifications.c.id))


class Notifications:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _add(self, table: sa.Table, row: dict[str, object]) -> bool:
        """Whether the row is new (False: one with its key was there already, and is left as it is)."""
        return self.conn.execute(ADD[table.name][self.conn.dialect.name], row).first() is not None

    def lock_order(self, order_id: str) -> None:
        """On PostgreSQL, the order's lock until the transaction ends (SQLite has one writer at a time anyway):
        what another transaction that held it wrote is seen after."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(LOCK_ORDER, {"name": f"sagashop:notification:order:{order_id}"})

    def add_customer(self, c: Customer) -> None:
        self._add(customers, {"user_id": c.user_id, "email": c.email, "name": c.name})

    def customer(self, user_id: str) -> Customer | None:
        row = self.conn.execute(CUSTOMER, {"p_user_id": user_id}).first()
        return None if row is None else Customer(row.user_id, row.email, row.name)

    def add_order(self, order_id: str, user_id: str) -> None:
        self._add(orders, {"order_id": order_id, "user_id": user_id})

    def user_of(self, order_id: str) -> str | None:
        return self.conn.execute(USER_OF, {"p_order_id": order_id}).scalar()

    def add_approved(self, order_id: str) -> None:
        self._add(approved, {"order_id": order_id})

    def is_approved(self, order_id: str) -> bool:
        return self.conn.execute(IS_APPROVED, {"p_order_id": order_id}).first() is not None

    def add_shipment(self, order_id: str, tracking_number: str) -> None:
        self._add(shipments, {"order_id": order_id, "tracking_number": tracking_number})

    def tracking_number(self, order_id: str) -> str | None:
        return self.conn.execute(TRACKING, {"p_order_id": order_id}).scalar()

    def add_notification(self, email: Email, event_id: str) -> bool:
        """Records the email as sent (in the caller's transaction); False when its (order, kind) was already."""
        return self._add(notifications, {
            "id": email.id, "order_id": email.order_id, "kind": email.kind, "to_address": email.to.email,
            "subject": email.subject, "sent_at": now(), "event_id": event_id})

    def of_order(self, order_id: str) -> list[Sent]:
        return [Sent(row.id, row.order_id, row.kind, row.to_address, row.subject, row.sent_at)
                for row in self.conn.execute(OF_ORDER, {"p_order_id": order_id})]
