"""The inbox: in each consumer's own schema, the id of every event it applied, written in the transaction that
applies it. A delivery whose id is there was applied before (a redelivery, a replay, the stream read again by a
rebuild): it is acknowledged and nothing more. Rows older than KEEP are pruned: by then the stream no longer holds
their events (it keeps them 7 days: streams.MAX_AGE), so none of them can come again."""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sagashop.kit.clock import now
from sagashop.kit.db import insert_if_absent

from .streams import MAX_AGE

KEEP = MAX_AGE + timedelta(days=1)  # longer than the stream keeps an event: an id is never forgotten too soon

metadata = sa.MetaData()
inbox = sa.Table(
    "inbox", metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)
INSERT_IF_ABSENT = insert_if_absent(inbox)  # by dialect
PRUNE = inbox.delete().where(inbox.c.applied_at < sa.bindparam("p_before"))
CLEAR = inbox.delete()


def first_times(conn: Connection, events: Sequence[tuple[str, str]]) -> set[str]:
    """Notes the events (id, type) as applied in the caller's transaction, in one statement: the ids of those that
    were not already (apply only these)."""
    at = now()
    rows = [{"event_id": event_id, "event_type": event_type, "applied_at": at} for event_id, event_type in events]
    return set(conn.execute(INSERT_IF_ABSENT[conn.dialect.name], rows).scalars()) if rows else set()


def prune(conn: Connection) -> None:
    conn.execute(PRUNE, {"p_before": now() - KEEP})
