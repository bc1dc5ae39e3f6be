"""Products with stock counters, and reservations keyed by the saga's idempotency key.

Revision ID: inventory_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "inventory_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("available", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sold", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint("available >= 0 AND reserved >= 0 AND sold >= 0", name="stock_not_negative"),
    )
    op.create_table(
        "reservations",
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lines", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
