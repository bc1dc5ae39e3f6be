"""The outbox: the events of the shipping service's changes, written with them, until the relay publishes them.

Revision ID: shipping_0002
Revises: shipping_0001
"""

from sagashop.events.migration import create_outbox

revision = "shipping_0002"
down_revision = "shipping_0001"


def upgrade() -> None:
    create_outbox()
