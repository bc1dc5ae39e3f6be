"""Payment tables and the queries on them; every function runs inside the caller's transaction."""

from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

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


class Payments:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def payment(self, key: str) -> Payment | None:
        row = (await self.conn.execute(sa.select(payments).where(payments.c.idempotency_key == key))).first()
        if row is None:
            return None
        return Payment(row.idempotency_key, row.order_id, row.status, row.amount_cents, row.currency)

    async def add(self, p: Payment) -> Payment:
        moment = now()
        await self.conn.execute(payments.insert().values(
            idempotency_key=p.key, order_id=p.order_id, status=p.status, amount_cents=p.amount_cents,
            currency=p.currency, created_at=moment, updated_at=moment,
        ))
        return p

    async def set_status(self, p: Payment, status: str) -> Payment:
        await self.conn.execute(
            payments.update().where(payments.c.idempotency_key == p.key).values(status=status, updated_at=now())
        )
        return replace(p, status=status)

    async def record(self, p: Payment, kind: str) -> None:
        """One ledger line per (key, kind): a unique index refuses a second charge or refund of one payment."""
        await self.conn.execute(ledger.insert().values(
            order_id=p.order_id, idempotency_key=p.key, kind=kind, amount_cents=p.amount_cents,
            currency=p.currency, created_at=now(),
        ))

    async def ledger(self, order_id: str) -> list[LedgerLine]:
        query = sa.select(ledger).where(ledger.c.order_id == order_id).order_by(ledger.c.created_at, ledger.c.id)
        return [LedgerLine(row.kind, row.amount_cents, row.currency, row.created_at)
                for row in await self.conn.execute(query)]
