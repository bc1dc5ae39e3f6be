"""The W3C traceparent of the call that started each saga, so a run resumed elsewhere links to its trace.

Revision ID: orchestrator_0003
Revises: orchestrator_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "orchestrator_0003"
down_revision = "orchestrator_0002"


def upgrade() -> None:
    op.add_column("sagas", sa.Column("traceparent", sa.String(64), nullable=True))
