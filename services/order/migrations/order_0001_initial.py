"""Orders: priced lines and address as JSON, status and payment outcome as columns.

Revision ID: order_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "order_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.String, nullable=False, server_default=""),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("address", sa.JSON, nullable=False),
        sa.Column("payment_status", sa.String(16), nullable=False),
        sa.Column("payment_amount_cents", sa.BigInteger, nullable=False),
        sa.Column("tracking_number", sa.String, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("orders_by_user_newest", "orders", ["user_id", "created_at", "id"])
