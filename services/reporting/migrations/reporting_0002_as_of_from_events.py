"""When the newest event applied happened is read from the timeline (its latest `occurred_at`, by an index)
instead of being kept in a row of its own: one statement less for every event applied.

Revision ID: reporting_0002
Revises: reporting_0001
"""

from alembic import op

revision = "reporting_0002"
down_revision = "reporting_0001"


def upgrade() -> None:
    op.create_index("ix_order_events_occurred_at", "order_events", ["occurred_at"])
    op.drop_table("as_of")
