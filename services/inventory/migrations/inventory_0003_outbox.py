"""The outbox: the events of the inventory service's changes, written with them, until the relay publishes them.

Revision ID: inventory_0003
Revises: inventory_0002
"""

from sagashop.events.migration import create_outbox

revision = "inventory_0003"
down_revision = "inventory_0002"


def upgrade() -> None:
    create_outbox()
