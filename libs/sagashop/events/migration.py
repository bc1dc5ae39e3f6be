"""The outbox's and the inbox's first shapes, created by one revision in each service's migrations (a producer's
`<name>_000N_outbox`, a consumer's with its other tables). Never changed: a later shape is a revision of its own,
additive like every revision (docs/schema.md)."""

import sqlalchemy as sa
from alembic import op


def create_outbox() -> None:
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(32), nullable=False, unique=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("traceparent", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    # what the relay reads: the rows still to publish, in order; small however long published rows are kept
    unpublished = sa.text("published_at IS NULL")
    op.create_index("outbox_unpublished", "outbox", ["seq"], postgresql_where=unpublished, sqlite_where=unpublished)
    op.create_index("outbox_published_at", "outbox", ["published_at"])  # what pruning deletes


def create_inbox() -> None:
    """A consumer's inbox (`inbox.py`): the events it applied, by id."""
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("inbox_applied_at", "inbox", ["applied_at"])  # what pruning deletes
