"""The inbox of the events applied, what the events told of customers, orders and shipments, and the notifications
sent: one per (order, kind), which is what makes each email go out once.

Revision ID: notification_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from sagashop.events.migration import create_inbox

revision = "notification_0001"
down_revision = None


def upgrade() -> None:
    create_inbox()
    op.create_table(
        "customers",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
    )
    op.create_table("approved", sa.Column("order_id", sa.String(64), primary_key=True))
    op.create_table(
        "shipments",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("tracking_number", sa.String(200), nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(32), primary_key=True),  # derived from (order_id, kind)
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("to_address", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.UniqueConstraint("order_id", "kind", name="one_notification_per_kind"),
    )
