"""Per-part pins: a saga's context holds the version of each part it calls (`order_version`, `inventory_version`,
`payment_version`, `shipping_version`), taken here from the whole-saga `route` of the sagas already stored. Expand
only: `route` stays in every context, so an orchestrator of the version before reads on.

Revision ID: orchestrator_0006
Revises: orchestrator_0005
"""

from alembic import op

revision = "orchestrator_0006"
down_revision = "orchestrator_0005"

KEYS = ("order_version", "inventory_version", "payment_version", "shipping_version")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # a key already there wins: the right side of || does
        pairs = ", ".join(f"'{key}', coalesce(context->>'route', 'v1')" for key in KEYS)
        op.execute(f"UPDATE sagas SET context = (jsonb_build_object({pairs}) || context::jsonb)::json")
    else:  # json_insert leaves a key already there as it is
        pairs = ", ".join(f"'$.{key}', coalesce(json_extract(context, '$.route'), 'v1')" for key in KEYS)
        op.execute(f"UPDATE sagas SET context = json_insert(context, {pairs})")
