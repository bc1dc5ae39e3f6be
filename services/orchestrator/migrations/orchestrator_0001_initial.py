"""The saga log: sagas with their lease, and one row per step and action.

Revision ID: orchestrator_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "orchestrator_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "sagas",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False, index=True),
        sa.Column("business_key", sa.String(300), unique=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("input", sa.JSON, nullable=False),
        sa.Column("state", sa.String(24), nullable=False, index=True),
        sa.Column("failure_reason", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True), index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "saga_steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("saga_id", sa.String(64), sa.ForeignKey("sagas.id"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("handled_by", sa.String(120), nullable=False),
        sa.Column("error", sa.String(500), nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("saga_id", "name", "action"),
    )
