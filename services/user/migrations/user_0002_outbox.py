"""The outbox: the events of the user service's changes, written with them, until the relay publishes them.

Revision ID: user_0002
Revises: user_0001
"""

from sagashop.events.migration import create_outbox

revision = "user_0002"
down_revision = "user_0001"


def upgrade() -> None:
    create_outbox()
