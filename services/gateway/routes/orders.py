"""Orders: checkout (through the orchestrator's saga), reads, and the saga timeline."""

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from sagashop.kit.errors import NotFound
from sagashop.v1 import orchestrator_pb2, order_pb2
from sagashop.values import CANCELLED, MAX_KEY, MAX_ORDERS_LISTED, PENDING

from ..deps import Backends, CurrentUser, IdempotencyKeys
from ..problems import responses
from ..schemas import IdPath, Order, OrderIn, OrderList
from ..tokens import Principal
from . import READ_WITHIN

router = APIRouter(tags=["orders"], responses=responses(401))
DEFAULT_WAIT, MAX_WAIT = 10.0, 60.0
LEASE_MARGIN = 10.0  # seconds a key stays claimed past the wait, should the gateway die holding it
CURSOR, MAX_CURSOR = r"^[A-Za-z0-9_-]+$", 200  # a next_cursor as a page of orders gave it
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_KEY)]
Prefer = Annotated[str | None, Header()]


def wait_seconds(prefer: str | None) -> float:
    """`Prefer: wait=N` (RFC 7240) asks for another wait window; 0 answers at once."""
    match = re.search(r"(?:^|[;,\s])wait=(\d+(?:\.\d+)?)", prefer or "")
    return min(float(match.group(1)), MAX_WAIT) if match else DEFAULT_WAIT


def order_out(o: order_pb2.Order) -> Order:
    return Order.model_validate({
        "id": o.id, "status": o.status, "failure_reason": o.failure_reason or None,
        "items": [{"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents} for i in o.items],
        "total_cents": o.total_cents, "currency": o.currency,
        "payment": {"status": o.payment_status, "amount_cents": o.payment_amount_cents},
        "shipment": {"tracking_number": o.tracking_number} if o.tracking_number else None,
        "created_at": o.created_at, "updated_at": o.updated_at,
    })


async def visible_order(b: Backends, order_id: str, viewer: Principal) -> order_pb2.Order:
    """The order, to its owner or an admin; anyone else is told it does not exist."""
    found: order_pb2.Order = await b.order.call(b.order.stub.GetOrder, order_pb2.GetOrderRequest(id=order_id),
                                                within=READ_WITHIN)
    if found.user_id != viewer.user_id and not viewer.is_admin:
        raise NotFound(f"no order {order_id!r}")
    return found


def order_links(**operations: tuple[str, str]) -> dict[str, Any]:
    """OpenAPI links from an answer holding an order to operations on it (name=(method, path)): what a client, or a
    stateful test, may call next with the order's id."""
    return {name: {"operationRef": "#/paths/" + path.replace("/", "~1") + f"/{method}",
                   "parameters": {"order_id": "$response.body#/id"}} for name, (method, path) in operations.items()}


NEXT = {"links": order_links(GetOrder=("get", "/v1/orders/{order_id}"), GetSaga=("get", "/v1/orders/{order_id}/saga"),
                             CancelOrder=("post", "/v1/orders/{order_id}/cancel"))}


@router.post("/orders", status_code=201, responses={201: NEXT, 200: {"model": Order, **NEXT},
                                                    202: {"model": Order, **NEXT}, **responses(409)})
async def place_order(body: OrderIn, user: CurrentUser, b: Backends, keys: IdempotencyKeys, response: Response,
                      idempotency_key: IdempotencyKey = None, prefer: Prefer = None) -> Order:
    """Runs the checkout saga. A repeated Idempotency-Key answers the order it first placed (200), a key used for
    another body 409 idempotency_conflict, and one whose first request is still running 409
    idempotency_in_progress with Retry-After."""
    wait = wait_seconds(prefer)
    async with keys.keyed(user.user_id, idempotency_key, body, lease=wait + LEASE_MARGIN) as claim:
        if claim.order_id and (earlier := await current_order(b, claim.order_id)).status != PENDING:
            response.status_code = 200
            return earlier
        started = await start_checkout(b, user, body, idempotency_key, wait)
        claim.order_id = started.order_id
    # the saga's last step's order when the checkout ended before the reply; else the order as it stands now
    order = order_out(started.order) if started.HasField("order") else await current_order(b, started.order_id)
    if order.status == PENDING:
        response.status_code = 202
        response.headers["Location"] = f"/v1/orders/{order.id}"
    elif not started.created:
        response.status_code = 200
    return order


async def start_checkout(b: Backends, user: Principal, body: OrderIn, idempotency_key: str | None,
                         wait: float) -> orchestrator_pb2.StartCheckoutReply:
    request = orchestrator_pb2.StartCheckoutRequest(
        user_id=user.user_id, idempotency_key=idempotency_key or "", payment_token=body.payment_token,
        lines=[line.model_dump() for line in body.items], address=body.shipping_address.model_dump(),
        wait_ms=int(wait * 1000))
    # only a keyed request may be retried: the key makes a second delivery find the first saga
    reply: orchestrator_pb2.StartCheckoutReply = await b.orchestrator.call(
        b.orchestrator.stub.StartCheckout, request, timeout=wait + 5, within=READ_WITHIN if idempotency_key else 0)
    return reply


async def current_order(b: Backends, order_id: str) -> Order:
    return order_out(await b.order.call(b.order.stub.GetOrder, order_pb2.GetOrderRequest(id=order_id),
                                        within=READ_WITHIN))


@router.get("/orders")
async def list_orders(user: CurrentUser, b: Backends,
                      limit: Annotated[int, Query(ge=1, le=MAX_ORDERS_LISTED)] = MAX_ORDERS_LISTED,
                      cursor: Annotated[str | None, Query(max_length=MAX_CURSOR, pattern=CURSOR)] = None) -> OrderList:
    """The caller's orders, newest first, a page at a time: `next_cursor` is the `cursor` of the next page."""
    found = await b.order.call(b.order.stub.ListOrders, order_pb2.ListOrdersRequest(
        user_id=user.user_id, limit=limit, cursor=cursor or ""), within=READ_WITHIN)
    return OrderList(items=[order_out(o) for o in found.items], next_cursor=found.next_cursor or None)


@router.get("/orders/{order_id}", responses=responses(404))
async def get_order(order_id: IdPath, user: CurrentUser, b: Backends) -> Order:
    return order_out(await visible_order(b, order_id, user))


@router.post("/orders/{order_id}/cancel", responses={202: {"model": Order}, **responses(404, 409)})
async def cancel_order(order_id: IdPath, user: CurrentUser, b: Backends, response: Response,
                       prefer: Prefer = None) -> Order:
    """Runs the cancellation saga of an APPROVED order: shipment cancelled, payment refunded, stock returned."""
    await visible_order(b, order_id, user)
    wait = wait_seconds(prefer)
    await b.orchestrator.call(b.orchestrator.stub.CancelOrder, orchestrator_pb2.CancellationRequest(
        order_id=order_id, wait_ms=int(wait * 1000)), timeout=wait + 5, within=READ_WITHIN)
    order = order_out(await visible_order(b, order_id, user))
    if order.status != CANCELLED:
        response.status_code = 202
    return order
