"""A saga's subject: whom it acts for (a checkout's customer), indexed with its state so the active sagas of one
subject are counted at once. Expand only: an orchestrator of the version before writes none and reads on.

Revision ID: orchestrator_0005
Revises: orchestrator_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "orchestrator_0005"
down_revision = "orchestrator_0004"


def upgrade() -> None:
    op.add_column("sagas", sa.Column("subject", sa.String, nullable=True))
    op.create_index("ix_sagas_subject_state", "sagas", ["subject", "state"])
