"""The outbox: a table in each service's own schema where a change writes its events, in the transaction of the
change or, for PostgreSQL's one-statement forms, in the same statement (a data-modifying CTE). So a change is
never stored without its events nor an event without its change, and a repeat that changes nothing (the same
idempotency key) writes none. The relay (`relay.py`) publishes the rows in `seq` order and marks them published.

A repository writes an event one of three ways, each one INSERT: `write(conn, ...)` inside a unit that already
runs in a transaction (or under `all_or_nothing`); `after(cte)` as the last part of a Core statement, one row
per row its CTE returns; or `SQL_INSERT` in a textual statement, `SELECT {sql_values()} FROM <cte>`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

from sagashop.kit.db import IN_TRANSACTION

from .catalog import Payload
from .envelope import envelope

metadata = sa.MetaData()
outbox = sa.Table(
    "outbox", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(32), nullable=False, unique=True),
    # the subject is `<name>.events.<event_type>` (streams.Streams)
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("aggregate_id", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the envelope's JSON, published as it is
    sa.Column("traceparent", sa.String(64)),  # also in the body; a header of the message, read without parsing it
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True)),  # NULL until JetStream acknowledged it
)
WRITTEN = ("event_id", "event_type", "aggregate_id", "body", "traceparent", "created_at")  # what a writer sets
SQL_COLUMNS = ", ".join(WRITTEN)
# the values of one event row in a textual statement: its bind parameters, typed for PostgreSQL
SQL_BODY = "CAST(:e_body AS text)"


def sql_values(body: str = SQL_BODY) -> str:
    """The values of one event row in a textual statement (`e_*`), the body `body` (an expression of SQL_BODY,
    for a statement that completes the payload with what only the database knows)."""
    return ("CAST(:e_event_id AS varchar), CAST(:e_event_type AS varchar), CAST(:e_aggregate_id AS varchar), "
            f"{body}, CAST(:e_traceparent AS varchar), CAST(:e_created_at AS timestamptz)")


SQL_INSERT = f"INSERT INTO outbox ({SQL_COLUMNS})"
P = sa.bindparam
INSERT = outbox.insert()
WROTE = "sagashop.events_written"  # in Connection.info from a write until the commit that makes it visible


@dataclass(frozen=True)
class Event:
    """One event as its outbox row holds it."""

    event_id: str
    event_type: str
    aggregate_id: str
    body: str
    traceparent: str | None
    created_at: datetime

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in WRITTEN}

    def params(self) -> dict[str, Any]:
        """Its values as the bind parameters of `after` and `sql_values` (`e_*`)."""
        return {f"e_{name}": value for name, value in self.row().items()}


def event(payload: Payload, aggregate_id: str, *, correlation_id: str | None = None,
          causation_id: str | None = None, user_id: str | None = None) -> Event:
    """A new event about aggregate `aggregate_id`, made now in the current trace, ready to be written."""
    made = envelope(payload, correlation_id=correlation_id, causation_id=causation_id, user_id=user_id)
    return Event(made.event_id, made.event_type, aggregate_id, made.model_dump_json(), made.metadata.traceparent,
                 made.occurred_at)


def write(conn: Connection, *events: Event) -> None:
    """Writes the events: call it inside the unit's transaction (or `all_or_nothing`), after the change."""
    if events:
        written(conn)
        conn.execute(INSERT, [e.row() for e in events])


def after(source: sa.CTE) -> sa.Insert:
    """An INSERT of one event row (its values bound as `e_*`: `Event.params`) per row `source` returns: the last
    part of a statement whose CTE makes the change, so no row comes back when nothing changed. Returns `seq`."""
    values = sa.select(*(sa.cast(P(f"e_{name}"), outbox.c[name].type) for name in WRITTEN)).select_from(source)
    return outbox.insert().from_select(list(WRITTEN), values).returning(outbox.c.seq)


def written(conn: Connection) -> None:
    """Notes that the unit on `conn` writes events, so `on_commit` wakes the relay once they are visible."""
    conn.info[WROTE] = True


def on_commit(engine: Engine, wake: Callable[[], None]) -> None:
    """Calls `wake` (from whichever thread runs the unit) right after a statement that wrote events commits:
    a COMMIT, or the statement itself when it ran outside a transaction. A rolled-back unit wakes nothing."""

    @sa_event.listens_for(engine, "after_cursor_execute")
    def after_execute(conn: Connection, _cursor: object, statement: str, *_: object) -> None:
        info = conn.info
        if not info.get(WROTE):
            return
        if statement == "ROLLBACK":
            info.pop(WROTE)
        elif statement == "COMMIT" or not info.get(IN_TRANSACTION):
            info.pop(WROTE)
            wake()
