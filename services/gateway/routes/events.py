"""Domain events as users and operators see them: an order's timeline (from the reporting side), the events a
consumer gave up on (dead letters, read and replayed on the broker) and rebuilding a consumer's read models."""

import json
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query

from sagashop.events import deadletters
from sagashop.kit.errors import NotFound
from sagashop.v1 import reporting_pb2

from ..deps import AdminUser, Backends, CurrentUser, EventBroker
from ..problems import responses
from ..schemas import DeadLetter, DeadLetterList, IdPath, OrderEvent, OrderEventList, Rebuilt, Replayed
from . import READ_WITHIN
from .orders import visible_order

router = APIRouter(tags=["events"], responses=responses(401))
MAX_DEAD_LETTERS = 1000  # listed at once
REBUILD_SECONDS = 300.0  # a rebuild reads the whole stream (7 days at most) in one transaction
READ_MODELS = ("reporting",)  # the event consumers with read models to rebuild (notification keeps none)
SEQUENCE = Annotated[str, Path(pattern=r"^[1-9][0-9]{0,19}$")]  # a dead letter's id


@router.get("/orders/{order_id}/events", responses=responses(404))
async def order_events(order_id: IdPath, user: CurrentUser, b: Backends) -> OrderEventList:
    """The order's domain events, oldest first, as the reporting side has applied them: eventually consistent."""
    await visible_order(b, order_id, user)
    found = await b.reporting.call(b.reporting.stub.OrderEvents, reporting_pb2.OrderEventsRequest(
        order_id=order_id), within=READ_WITHIN)
    return OrderEventList(items=[OrderEvent(event_id=e.event_id, event_type=e.event_type, occurred_at=e.occurred_at,
                                            payload=json.loads(e.payload_json)) for e in found.items])


@router.get("/admin/events/dead-letters", responses=responses(403))
async def dead_letters(admin: AdminUser, broker: EventBroker,
                       limit: Annotated[int, Query(ge=1, le=MAX_DEAD_LETTERS)] = MAX_DEAD_LETTERS) -> DeadLetterList:
    """The events a consumer gave up on (retries exhausted, or an event that can never apply), oldest first."""
    async with broker.jetstream() as js:
        found = await deadletters.list_dead_letters(js, broker.streams, limit)
    return DeadLetterList(items=[DeadLetter(**asdict(letter)) for letter in found])


@router.post("/admin/events/dead-letters/{dead_letter_id}/replay", status_code=202, responses=responses(403, 404))
async def replay_dead_letter(dead_letter_id: SEQUENCE, admin: AdminUser, broker: EventBroker) -> Replayed:
    """Sends the event back to its consumer (which applies it once, whatever happened meanwhile) and removes the
    dead letter."""
    async with broker.jetstream() as js:
        if not await deadletters.replay(js, broker.streams, dead_letter_id):
            raise NotFound(f"no dead letter {dead_letter_id}")
    return Replayed(id=dead_letter_id)


@router.post("/admin/events/rebuild/{part}", responses=responses(403, 404))
async def rebuild(part: Annotated[str, Path(max_length=64)], admin: AdminUser, b: Backends) -> Rebuilt:
    """Rebuilds the part's read models from the event stream's first event, in one transaction (the part's
    consumer waits meanwhile). Only `reporting` keeps read models."""
    if part not in READ_MODELS:
        raise NotFound(f"{part!r} has no read models to rebuild; {', '.join(READ_MODELS)} has")
    done = await b.reporting.call(b.reporting.stub.Rebuild, reporting_pb2.RebuildRequest(), timeout=REBUILD_SECONDS)
    return Rebuilt(part=part, events=done.events, seconds=round(done.seconds, 3))

