"""Sagas: the timeline of an order's saga, following it live, and the operators' view and actions."""

import weakref
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from google.protobuf.json_format import MessageToDict

from sagashop.kit.errors import TooMany
from sagashop.saga import ABORTED, SagaState
from sagashop.v1 import orchestrator_pb2
from sagashop.values import MAX_SAGAS_LISTED, MAX_WATCHES

from ..deps import AdminUser, Backends, CurrentUser
from ..problems import responses
from ..schemas import IdPath, OperatorAction, OperatorVerb, Saga, SagaList
from ..tokens import Principal
from . import READ_WITHIN
from .orders import visible_order

router = APIRouter(tags=["sagas"], responses=responses(401))
# user id -> the event streams open for them here: each holds a connection and a stream from the orchestrator; a
# stream leaves its set when it is gone (ended, or dropped before it began), so a count never leaks
WATCHING: defaultdict[str, weakref.WeakSet[AsyncIterator[str]]] = defaultdict(weakref.WeakSet)


def admit(user: Principal, events: AsyncIterator[str]) -> None:
    """Counts a new stream of the user's; refuses one beyond MAX_WATCHES (TooMany: 429 with Retry-After)."""
    for user_id in [u for u, streams in WATCHING.items() if not streams]:
        del WATCHING[user_id]
    if len(streams := WATCHING[user.user_id]) >= MAX_WATCHES:
        raise TooMany(f"at most {MAX_WATCHES} saga event streams open at once; close one first", retry_after=5)
    streams.add(events)


def saga_out(saga: orchestrator_pb2.Saga) -> Saga:
    return Saga.model_validate({
        **MessageToDict(saga, preserving_proto_field_name=True, always_print_fields_with_no_presence=True),
        "failure_reason": saga.failure_reason or None,
        "steps": [{**MessageToDict(s, preserving_proto_field_name=True, always_print_fields_with_no_presence=True),
                   "error": s.error or None, "finished_at": s.finished_at or None} for s in saga.steps],
    })


def as_seen_by(user: Principal, saga: Saga) -> Saga:
    """An admin sees everything; a customer neither the operators' audit trail (their ids, their notes) nor what
    a step's error says beyond its code, which is what is ours to tell (an operator's abort reason included)."""
    if user.is_admin:
        return saga
    steps = [step.model_copy(update={"error": step.error and step.error.split(":", 1)[0]}) for step in saga.steps]
    reason = None if saga.state == ABORTED else saga.failure_reason
    return saga.model_copy(update={"steps": steps, "audit": [], "failure_reason": reason})


async def get(b: Backends, saga_id: str = "", order_id: str = "") -> Saga:
    request = orchestrator_pb2.GetSagaRequest(saga_id=saga_id, order_id=order_id)
    return saga_out(await b.orchestrator.call(b.orchestrator.stub.GetSaga, request, within=READ_WITHIN))


@router.get("/orders/{order_id}/saga", responses=responses(404))
async def order_saga(order_id: IdPath, user: CurrentUser, b: Backends) -> Saga:
    await visible_order(b, order_id, user)
    return as_seen_by(user, await get(b, order_id=order_id))


@router.get("/orders/{order_id}/saga/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}, **responses(404)})
async def follow_order_saga(order_id: IdPath, user: CurrentUser, b: Backends) -> StreamingResponse:
    """Server-sent events: the saga now, then again at each transition, until it ends or is parked."""
    await visible_order(b, order_id, user)

    async def events() -> AsyncIterator[str]:
        watch = b.orchestrator.stub.WatchSaga(orchestrator_pb2.GetSagaRequest(order_id=order_id), timeout=600,
                                              metadata=b.orchestrator.metadata)
        try:
            async for saga in watch:
                yield f"event: saga\ndata: {as_seen_by(user, saga_out(saga)).model_dump_json()}\n\n"
        finally:  # ended, or its client went away: counted no more now, not once the collector frees it
            WATCHING[user.user_id].discard(stream)

    admit(user, stream := events())
    return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/admin/sagas", responses=responses(403))
async def list_sagas(admin: AdminUser, b: Backends, state: SagaState | None = None,
                     limit: Annotated[int, Query(ge=1, le=MAX_SAGAS_LISTED)] = 100) -> SagaList:
    found = await b.orchestrator.call(b.orchestrator.stub.ListSagas, orchestrator_pb2.ListSagasRequest(
        state=state or "", limit=limit), within=READ_WITHIN)
    return SagaList(items=[saga_out(s) for s in found.items])


@router.get("/admin/sagas/{saga_id}", responses=responses(403, 404))
async def admin_saga(saga_id: IdPath, admin: AdminUser, b: Backends) -> Saga:
    return await get(b, saga_id=saga_id)


@router.post("/admin/sagas/{saga_id}/{action}", responses=responses(403, 404, 409))
async def operate_saga(saga_id: IdPath, action: OperatorVerb, admin: AdminUser,
                       b: Backends, body: OperatorAction | None = None) -> Saga:
    """On a parked saga (NEEDS_ATTENTION): retry where it stopped, compensate, or abort; audited."""
    request = orchestrator_pb2.OperateSagaRequest(saga_id=saga_id, action=action, actor=admin.user_id,
                                                  reason=body.reason if body else "")
    return saga_out(await b.orchestrator.call(b.orchestrator.stub.OperateSaga, request))
