"""An index for the sweeper's question: which reservations are still HELD, and since when.

Revision ID: inventory_0002
Revises: inventory_0001
"""

from alembic import op

revision = "inventory_0002"
down_revision = "inventory_0001"


def upgrade() -> None:
    op.create_index("ix_reservations_state_created_at", "reservations", ["state", "created_at"])
