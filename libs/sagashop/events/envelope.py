"""The envelope every event travels in: who, when, why, and the payload of its type and version."""

import uuid
from typing import Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from sagashop.kit import telemetry
from sagashop.kit.clock import now

from .catalog import Payload

P = TypeVar("P", bound=Payload)


class Metadata(BaseModel):
    """Where the event comes from: what it belongs to, what caused it, whose it is, and the trace it was made in."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    correlation_id: str | None = Field(None, description="the order (and its saga) the event belongs to, if any")
    causation_id: str | None = Field(None, description=(
        "what caused it: the idempotency key of the saga step, or the command that made the change"))
    user_id: str | None = Field(None, description="the customer the aggregate belongs to, where the context knows")
    traceparent: str | None = Field(None, description="W3C trace context of the span that made the change")


class Envelope(BaseModel, Generic[P]):
    """One event. A consumer reads it with the payload model of the version it knows (`Envelope[OrderApproved]`):
    fields added later are ignored, none is ever removed or renamed within a version."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    event_id: str = Field(description="uuid4 hex; also the JetStream message id (`Nats-Msg-Id`), for de-duplication")
    event_type: str = Field(description="e.g. `order.approved`: `<aggregate>.<what happened>`")
    event_version: int = Field(ge=1, description="version of the payload's shape; a breaking change is a new one")
    occurred_at: AwareDatetime = Field(description="when the change was made, UTC")
    metadata: Metadata
    payload: P


def envelope(payload: Payload, *, correlation_id: str | None = None, causation_id: str | None = None,
             user_id: str | None = None) -> Envelope[Any]:
    """A new event around `payload`, made now, in the current trace (if a span is active). (Typed Any, the payload
    is written whole, with the fields of its own class.)"""
    return Envelope[Any](
        event_id=uuid.uuid4().hex, event_type=payload.event_type, event_version=payload.event_version,
        occurred_at=now(), payload=payload,
        metadata=Metadata(correlation_id=correlation_id, causation_id=causation_id, user_id=user_id,
                          traceparent=telemetry.traceparent()))

