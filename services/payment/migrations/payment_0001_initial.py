"""Payments keyed by the Charge's idempotency key, and the ledger of their charge and refund lines.

Revision ID: payment_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "payment_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("idempotency_key", sa.String(200), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(64), nullable=False, index=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("idempotency_key", "kind", name="one_line_per_kind"),
        sa.CheckConstraint("kind IN ('charge', 'refund') AND amount_cents > 0", name="ledger_line_valid"),
    )
