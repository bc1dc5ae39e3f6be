"""One event as a consumer receives it, and how it is applied: its id noted in the inbox, then its handler, in the
caller's transaction, in a span that continues the trace that made the event. Shared by the live consumer
(`consumer.py`) and a rebuild (`rebuild.py`), so both apply an event the same way."""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from sagashop.kit import telemetry

from . import inbox
from .catalog import Payload
from .envelope import Envelope

Effect = Callable[[], None]
"""What an event makes happen outside the database, which no rollback undoes (an email). Its handler returns it;
it runs once every event of the transaction has applied, just before the commit, so an event failing later in a
batch (which is then applied again one by one) never makes it happen twice. Raising rolls the transaction back as
a handler does. A rebuild, which makes read models again, never runs them."""
Handler = Callable[[Connection, Envelope[Any]], Effect | None]
"""Applies one event, inside the consumer's transaction (on the database's worker, so it may block). Raising rolls
the transaction back: the event is delivered again later, a bounded number of times, then dead-lettered."""
Handlers = Mapping[str, tuple[type[Payload], Handler]]  # by event type: the payload model it reads, its handler
LOCK = sa.text("SELECT pg_advisory_xact_lock_shared(hashtext(:name))")
LOCK_EXCLUSIVE = sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))")


class Poison(Exception):
    """An event that can never apply (raise it from a handler; pydantic's ValidationError counts as one): it is
    dead-lettered at once, never tried again."""


@dataclass(frozen=True)
class Delivery:
    seq: int  # in the stream it came from
    subject: str
    event_id: str
    event_type: str
    occurred_at: float  # epoch seconds
    traceparent: str | None
    envelope: Envelope[Any] | None = None  # read with its handler's payload model; None: no handler for its type
    handler: Handler | None = None

    @classmethod
    def read(cls, data: bytes, subject: str, headers: Mapping[str, str], seq: int, handlers: Handlers) -> "Delivery":
        """The event in a message; Poison if it is no event, or not one its handler's payload model can read."""
        try:
            head = Envelope[Any].model_validate_json(data)
            payload_type, handler = handlers.get(head.event_type, (None, None))
            event = Envelope[payload_type].model_validate_json(data) if payload_type else None  # type: ignore[valid-type]
        except ValidationError as e:
            raise Poison(f"not a valid event: {_first(e)}") from None
        return cls(seq, subject, head.event_id, head.event_type, head.occurred_at.timestamp(),
                   headers.get(telemetry.TRACEPARENT) or head.metadata.traceparent, event, handler)

    @classmethod
    def identify(cls, data: bytes, seq: int) -> "Delivery":
        """What can be told of a message that is no valid event: its id and type if it has them."""
        try:
            fields = json.loads(data)
        except ValueError:
            fields = None
        fields = fields if isinstance(fields, dict) else {}
        event_id, event_type = fields.get("event_id"), fields.get("event_type")
        return cls(seq, "", str(event_id)[:64] if event_id else f"seq-{seq}",
                   str(event_type)[:64] if event_type else "unknown", 0.0, None)


def apply_all(conn: Connection, deliveries: list[Delivery], consumer: str) -> list[Delivery]:
    """Applies the events in order in the caller's transaction (their ids noted in the inbox in one statement),
    then makes happen what their handlers returned (`Effect`): those it applied (the others its inbox showed
    applied before)."""
    new = inbox.first_times(conn, [(d.event_id, d.event_type) for d in deliveries])
    effects: list[Effect] = []
    applied = []
    for delivery in deliveries:
        if delivery.event_id in new:
            new.discard(delivery.event_id)  # (the same event twice in a batch: once)
            _handle(conn, delivery, consumer, effects)
            applied.append(delivery)
    for effect in effects:
        effect()
    return applied


def apply(conn: Connection, delivery: Delivery, consumer: str) -> bool:
    """For a rebuild: applies the event unless its inbox shows it applied, and leaves out what its handler returns
    (a rebuild makes read models again, never what the events made happen); whether it applied it."""
    if not inbox.first_times(conn, [(delivery.event_id, delivery.event_type)]):
        return False
    _handle(conn, delivery, consumer, effects=[])
    return True


def _handle(conn: Connection, delivery: Delivery, consumer: str, effects: list[Effect]) -> None:
    """Its handler, in a span that continues the trace that made the event."""
    assert delivery.envelope is not None and delivery.handler is not None
    parent = telemetry.W3C.extract({telemetry.TRACEPARENT: delivery.traceparent}) if delivery.traceparent else None
    attributes = {"messaging.system": "nats", "messaging.destination.name": delivery.subject,
                  "messaging.message.id": delivery.event_id, "sagashop.consumer": consumer}
    with telemetry.span(f"consume {delivery.event_type}", parent=parent, kind=trace.SpanKind.CONSUMER,
                        attributes=attributes):
        if (effect := delivery.handler(conn, delivery.envelope)) is not None:
            effects.append(effect)


def lock(conn: Connection, consumer: str, *, exclusive: bool) -> None:
    """On PostgreSQL, the consumer's lock for the rest of the transaction: shared by the live consumers' batches
    (replicas apply side by side), exclusive for a rebuild. SQLite has one writer at a time anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(LOCK_EXCLUSIVE if exclusive else LOCK, {"name": f"sagashop:consumer:{consumer}"})


def _first(error: ValidationError) -> str:
    """The first of pydantic's complaints, where it is (never the value: it may be anything)."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{first['msg']} at {where}" if where else first["msg"]
