"""Operators' audit trail of each saga, and the version set (route) a saga is pinned to.

Revision ID: orchestrator_0002
Revises: orchestrator_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "orchestrator_0002"
down_revision = "orchestrator_0001"


def upgrade() -> None:
    op.add_column("sagas", sa.Column("route", sa.String(16), nullable=False, server_default="v1"))
    op.create_table(
        "saga_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("saga_id", sa.String(64), sa.ForeignKey("sagas.id"), nullable=False, index=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
