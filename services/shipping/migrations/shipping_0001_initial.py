"""Shipments keyed by the saga's idempotency key, each with a unique tracking number.

Revision ID: shipping_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "shipping_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tracking_number", sa.String(14), nullable=True, unique=True),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("lines", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
