"""A saga's context: a string map its starter stores with it for its steps. The version set a saga is pinned to
(its route) moves into it, as context["route"].

Revision ID: orchestrator_0004
Revises: orchestrator_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "orchestrator_0004"
down_revision = "orchestrator_0003"


def upgrade() -> None:
    op.add_column("sagas", sa.Column("context", sa.JSON, nullable=False, server_default=sa.text("'{}'")))
    as_json = "json_build_object" if op.get_bind().dialect.name == "postgresql" else "json_object"
    op.execute(f"UPDATE sagas SET context = {as_json}('route', route)")
    with op.batch_alter_table("sagas") as table:
        table.drop_column("route")
