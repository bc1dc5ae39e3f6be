"""The outbox: the events of the order service's changes, written with them, until the relay publishes them.

Revision ID: order_0002
Revises: order_0001
"""

from sagashop.events.migration import create_outbox

revision = "order_0002"
down_revision = "order_0001"


def upgrade() -> None:
    create_outbox()
