"""The outbox: the events of the payment service's changes, written with them, until the relay publishes them.

Revision ID: payment_0002
Revises: payment_0001
"""

from sagashop.events.migration import create_outbox

revision = "payment_0002"
down_revision = "payment_0001"


def upgrade() -> None:
    create_outbox()
