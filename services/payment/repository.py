"""Payment tables and the queries on them; every function runs inside the caller's unit of work (kit.db). The
statements are built once, with bind parameters (`p_*`): building one costs more than executing it."""

from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sagashop.kit.clock import now

from .domain import LedgerLine, Payment

metadata = sa.MetaData()
payments = sa.Table(
    "payments", metadata,
    sa.Column("idempotency_key", sa.String, primary_key=True), sa.Column("order_id", sa.String),
    sa.Column("status", sa.String), sa.Column("amount_cents", sa.BigInteger), sa.Column("currency", sa.String),
    sa.Column("created_at", sa.DateTime(timezone=True)), sa.Column("updated_at", sa.DateTime(timezone=True)),
)
ledger = sa.Table(
    "ledger", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String), sa.Column("idempotency_key", sa.String), sa.Column("kind", sa.String),
    sa.Column("amount_cents", sa.BigInteger), sa.Column("currency", sa.String),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
P = sa.bindparam
BY_KEY = sa.select(payments).where(payments.c.idempotency_key == P("p_key"))
INSERT = payments.insert()
SET_STATUS = payments.update().where(payments.c.idempotency_key == P("p_key")).values(
    status=P("p_status"), updated_at=P("p_at"))
RECORD = ledger.insert()
OF_ORDER = sa.select(ledger).where(ledger.c.order_id == P("p_order_id")).order_by(ledger.c.created_at, ledger.c.id)


class Payments:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def payment(self, key: str) -> Payment | None:
        row = self.conn.execute(BY_KEY, {"p_key": key}).first()
        if row is None:
            return None
        return Payment(row.idempotency_key, row.order_id, row.status, row.amount_cents, row.currency)

    def add(self, p: Payment) -> Payment:
        moment = now()
        self.conn.execute(INSERT, {
            "idempotency_key": p.key, "order_id": p.order_id, "status": p.status, "amount_cents": p.amount_cents,
            "currency": p.currency, "created_at": moment, "updated_at": moment})
        return p

    def set_status(self, p: Payment, status: str) -> Payment:
        self.conn.execute(SET_STATUS, {"p_key": p.key, "p_status": status, "p_at": now()})
        return replace(p, status=status)

    def record(self, p: Payment, kind: str) -> None:
        """One ledger line per (key, kind): a unique index refuses a second charge or refund of one payment."""
        self.conn.execute(RECORD, {
            "order_id": p.order_id, "idempotency_key": p.key, "kind": kind, "amount_cents": p.amount_cents,
            "currency": p.currency, "created_at": now()})

    def ledger(self, order_id: str) -> list[LedgerLine]:
        return [LedgerLine(row.kind, row.amount_cents, row.currency, row.created_at)
                for row in self.conn.execute(OF_ORDER, {"p_order_id": order_id})]
