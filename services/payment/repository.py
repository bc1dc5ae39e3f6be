"""Payment tables and the queries on them; every function runs inside the caller's unit of work (kit.db). The
statements are built once, with bind parameters (`p_*`): building one costs more than executing it."""

from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from sagashop.events import outbox
from sagashop.events.catalog import PaymentCharged, PaymentRefunded
from sagashop.kit.clock import now
from sagashop.kit.db import all_or_nothing, insert_if_absent, one_statement

from .domain import REFUND, LedgerLine, Payment

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
INSERT_IF_ABSENT = insert_if_absent(payments)  # by dialect
# PostgreSQL only, used by `Payments.add_if_absent` beside its portable form: a payment, its ledger line and its
# event in one statement (SQLite has no data-modifying CTE), the line and the event only if the payment is new (a
# row comes back)
_NEW = (postgresql.insert(payments).values({c.name: P(f"p_{c.name}", type_=c.type) for c in payments.c})
        .on_conflict_do_nothing(index_elements=[payments.c.idempotency_key]).returning(*payments.c).cte("new"))
_LINE = ledger.insert().from_select(
    ["order_id", "idempotency_key", "kind", "amount_cents", "currency", "created_at"],
    sa.select(_NEW.c.order_id, _NEW.c.idempotency_key, P("p_kind", type_=sa.String), _NEW.c.amount_cents,
              _NEW.c.currency, _NEW.c.created_at)).returning(ledger.c.id).cte("line")
INSERT_IF_ABSENT_RECORDED = outbox.after(_LINE)
OF_ORDER = sa.select(ledger).where(ledger.c.order_id == P("p_order_id")).order_by(ledger.c.created_at, ledger.c.id)


class Payments:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.one_statement = one_statement(conn)

    def payment(self, key: str) -> Payment | None:
        row = self.conn.execute(BY_KEY, {"p_key": key}).first()
        if row is None:
            return None
        return Payment(row.idempotency_key, row.order_id, row.status, row.amount_cents, row.currency)

    def add(self, p: Payment) -> Payment:
        self.conn.execute(INSERT, _row(p))
        return p

    def add_if_absent(self, p: Payment, kind: str) -> bool:
        """Adds the payment, its ledger line (`kind`) and its event (payment.charged), unless a payment with its
        key is there already (then False, and nothing is written). On PostgreSQL in one statement
        (INSERT_IF_ABSENT_RECORDED), kept for throughput as every checkout charges: one round trip instead of the
        portable form's five (BEGIN, three inserts, COMMIT)."""
        charged = _event(PaymentCharged, p)
        if self.one_statement:
            row = {f"p_{name}": value for name, value in _row(p).items()}
            outbox.written(self.conn)
            return self.conn.execute(INSERT_IF_ABSENT_RECORDED,
                                     {**row, "p_kind": kind, **charged.params()}).first() is not None
        with all_or_nothing(self.conn):  # the portable form: the payment, its ledger line, its event
            if self.conn.execute(INSERT_IF_ABSENT[self.conn.dialect.name], _row(p)).first() is None:
                return False
            self.record(p, kind)
            outbox.write(self.conn, charged)
            return True

    def first(self, key: str) -> Payment:
        """The payment a key made (one is never deleted)."""
        found = self.payment(key)
        assert found is not None, f"no payment {key!r}"
        return found

    def set_status(self, p: Payment, status: str) -> Payment:
        self.conn.execute(SET_STATUS, {"p_key": p.key, "p_status": status, "p_at": now()})
        return replace(p, status=status)

    def refund(self, p: Payment, status: str) -> Payment:
        """Refunds the charged payment in the caller's transaction: its refund line, its new status, its event."""
        self.record(p, REFUND)
        refunded = self.set_status(p, status)
        outbox.write(self.conn, _event(PaymentRefunded, p))
        return refunded

    def record(self, p: Payment, kind: str) -> None:
        """One ledger line per (key, kind): a unique index refuses a second charge or refund of one payment."""
        self.conn.execute(RECORD, {
            "order_id": p.order_id, "idempotency_key": p.key, "kind": kind, "amount_cents": p.amount_cents,
            "currency": p.currency, "created_at": now()})

    def ledger(self, order_id: str) -> list[LedgerLine]:
        return [LedgerLine(row.kind, row.amount_cents, row.currency, row.created_at)
                for row in self.conn.execute(OF_ORDER, {"p_order_id": order_id})]


def _event(kind: type[PaymentCharged | PaymentRefunded], p: Payment) -> outbox.Event:
    return outbox.event(kind(payment_id=p.key, order_id=p.order_id, amount_cents=p.amount_cents, currency=p.currency),
                        p.key, correlation_id=p.order_id, causation_id=p.key)


def _row(p: Payment) -> dict[str, object]:
    moment = now()
    return {"idempotency_key": p.key, "order_id": p.order_id, "status": p.status, "amount_cents": p.amount_cents,
            "currency": p.currency, "created_at": moment, "updated_at": moment}
