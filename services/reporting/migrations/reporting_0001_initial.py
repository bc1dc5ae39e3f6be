"""The reporting read models, built only from the domain events, and the inbox of the events applied.

Revision ID: reporting_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from sagashop.events.migration import create_inbox

revision = "reporting_0001"
down_revision = None


def upgrade() -> None:
    create_inbox()
    op.create_table(
        "order_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False, index=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_table(
        "sales",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("units", sa.BigInteger, nullable=False),
        sa.Column("revenue_cents", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "outcomes",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("outcome", sa.String(16), primary_key=True),
        sa.Column("reason", sa.String(64), primary_key=True),  # a rejection's failure_reason; "" otherwise
        sa.Column("orders", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "compensations",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_table(  # one row: when the newest event applied happened
        "as_of",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    )
