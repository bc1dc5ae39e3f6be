"""Orders: checkout (through the orchestrator's saga), reads, and the saga timeline."""

import re
from typing import Annotated

from fastapi import APIRouter, Header, Response

from sagashop.kit.errors import NotFound
from sagashop.v1 import orchestrator_pb2, order_pb2

from ..deps import Backends, CurrentUser
from ..schemas import Order, OrderIn, OrderList
from ..tokens import Principal
from . import READ_WITHIN

router = APIRouter(tags=["orders"])
DEFAULT_WAIT, MAX_WAIT = 10.0, 60.0
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
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
    found = await b.order.call(b.order.stub.GetOrder, order_pb2.GetOrderRequest(id=order_id), within=READ_WITHIN)
    if found.user_id != viewer.user_id and not viewer.is_admin:
        raise NotFound(f"no order {order_id!r}")
    return found


@router.post("/orders", status_code=201, responses={200: {"model": Order}, 202: {"model": Order}})
async def place_order(body: OrderIn, user: CurrentUser, b: Backends, response: Response,
                      idempotency_key: IdempotencyKey = None, prefer: Prefer = None) -> Order:
    wait = wait_seconds(prefer)
    request = orchestrator_pb2.StartCheckoutRequest(
        user_id=user.user_id, idempotency_key=idempotency_key or "", payment_token=body.payment_token,
        lines=[line.model_dump() for line in body.items], address=body.shipping_address.model_dump(),
        wait_ms=int(wait * 1000))
    # only a keyed request may be retried: the key makes a second delivery find the first saga
    started = await b.orchestrator.call(b.orchestrator.stub.StartCheckout, request, timeout=wait + 5,
                                        within=READ_WITHIN if idempotency_key else 0)
    order = order_out(await b.order.call(b.order.stub.GetOrder, order_pb2.GetOrderRequest(id=started.order_id),
                                         within=READ_WITHIN))
    if order.status == "PENDING":
        response.status_code = 202
        response.headers["Location"] = f"/v1/orders/{order.id}"
    elif not started.created:
        response.status_code = 200
    return order


@router.get("/orders")
async def list_orders(user: CurrentUser, b: Backends) -> OrderList:
    found = await b.order.call(b.order.stub.ListOrders, order_pb2.ListOrdersRequest(user_id=user.user_id),
                               within=READ_WITHIN)
    return OrderList(items=[order_out(o) for o in found.items])


@router.get("/orders/{order_id}")
async def get_order(order_id: str, user: CurrentUser, b: Backends) -> Order:
    return order_out(await visible_order(b, order_id, user))


@router.post("/orders/{order_id}/cancel", responses={202: {"model": Order}})
async def cancel_order(order_id: str, user: CurrentUser, b: Backends, response: Response,
                       prefer: Prefer = None) -> Order:
    """Runs the cancellation saga of an APPROVED order: shipment cancelled, payment refunded, stock returned."""
    await visible_order(b, order_id, user)
    wait = wait_seconds(prefer)
    await b.orchestrator.call(b.orchestrator.stub.CancelOrder, orchestrator_pb2.CancellationRequest(
        order_id=order_id, wait_ms=int(wait * 1000)), timeout=wait + 5, within=READ_WITHIN)
    order = order_out(await visible_order(b, order_id, user))
    if order.status != "CANCELLED":
        response.status_code = 202
    return order
