"""OrderService: protobuf in and out, one transaction per call, the rules in domain.py."""

from collections.abc import Callable

from sqlalchemy.engine import Connection

from sagashop.kit.clock import now, rfc3339
from sagashop.kit.db import Database
from sagashop.kit.errors import Invalid, NotFound
from sagashop.kit.status import ServerContext
from sagashop.v1 import order_pb2 as pb
from sagashop.v1 import order_pb2_grpc
from sagashop.values import MAX_ORDERS_LISTED, Address, PricedLine

from .domain import Order, cursor_after, position_of, valid_id
from .repository import Orders


def order_pb(o: Order) -> pb.Order:
    return pb.Order(
        id=o.id, user_id=o.user_id, status=o.status, failure_reason=o.failure_reason,
        items=[{"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents} for i in o.items],
        total_cents=o.total_cents, currency=o.currency, payment_status=o.payment_status,
        payment_amount_cents=o.payment_amount_cents, tracking_number=o.tracking_number,
        address={"name": o.address.name, "line1": o.address.line1, "city": o.address.city,
                 "postal_code": o.address.postal_code, "country": o.address.country},
        created_at=rfc3339(o.created_at), updated_at=rfc3339(o.updated_at),
    )


def order_from(request: pb.CreateOrderRequest) -> Order:
    a = request.address
    return Order.create(
        request.id, request.user_id, [PricedLine(i.sku, i.quantity, i.unit_price_cents) for i in request.items],
        request.currency, Address(a.name, a.line1, a.city, a.postal_code, a.country), at=now(),
    )


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def CreateOrder(self, request: pb.CreateOrderRequest, context: ServerContext) -> pb.Order:
        wanted = order_from(request)  # a repeat gets the order first created
        return order_pb(await self.db.autocommit(lambda conn: Orders(conn).add(wanted)))

    async def GetOrder(self, request: pb.GetOrderRequest, context: ServerContext) -> pb.Order:
        order_id = valid_id("id", request.id)
        if (found := await self.db.autocommit(lambda conn: Orders(conn).get(order_id))) is None:
            raise NotFound(f"no order {request.id!r}")
        return order_pb(found)

    async def ListOrders(self, request: pb.ListOrdersRequest, context: ServerContext) -> pb.OrderList:
        user_id, after = valid_id("user_id", request.user_id), position_of(request.cursor)
        limit = request.limit or MAX_ORDERS_LISTED
        if not 1 <= limit <= MAX_ORDERS_LISTED:
            raise Invalid(f"limit is 1 to {MAX_ORDERS_LISTED}")
        found = await self.db.autocommit(lambda conn: Orders(conn).of_user(user_id, limit + 1, after))
        page = found[:limit]  # the one more read tells whether a next page exists
        return pb.OrderList(items=[order_pb(o) for o in page],
                            next_cursor=cursor_after(page[-1]) if len(found) > limit else "")

    async def ApproveOrder(self, request: pb.ApproveOrderRequest, context: ServerContext) -> pb.Order:
        return await self._move(request.id, lambda o: o.approve(request.tracking_number, request.charged_cents))

    async def RejectOrder(self, request: pb.RejectOrderRequest, context: ServerContext) -> pb.Order:
        return await self._move(
            request.id, lambda o: o.reject(request.failure_reason, request.refunded, request.refunded_cents))

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: ServerContext) -> pb.Order:
        return await self._move(request.id, Order.cancel)

    async def _move(self, order_id: str, move: Callable[[Order], Order]) -> pb.Order:
        """Lets the domain move the order as read, and saves the move only if the order still has the status it
        was read with; if another move came first, reads it again. Every move changes the status, so no move is
        decided on a stale order. No transaction is needed: the conditional update is what decides between two moves,
        so a move costs its read and its update, without BEGIN, a locked read and COMMIT."""
        order_id = valid_id("id", order_id)

        def work(conn: Connection) -> Order:
            orders = Orders(conn)
            while True:
                if (before := orders.get(order_id)) is None:
                    raise NotFound(f"no order {order_id!r}")
                after = move(before)
                if after is before:
                    return before
                if (saved := orders.save(after, was=before.status)) is not None:
                    return saved

        return order_pb(await self.db.autocommit(work))
