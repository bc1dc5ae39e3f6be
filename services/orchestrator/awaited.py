"""The orders whose checkout a StartCheckout call here is waiting for. The saga's last step (approve_order, or
reject_order) leaves the order it got back, so the call answers with it instead of the caller reading it again."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sagashop.v1 import order_pb2


class AwaitedOrders:
    def __init__(self) -> None:
        self.orders: dict[str, order_pb2.Order | None] = {}  # order id -> its last reply, once a step left one

    @contextmanager
    def awaiting(self, order_id: str) -> Iterator[Callable[[], order_pb2.Order | None]]:
        """While the block runs, a reply for `order_id` is kept; the block gets a way to read it."""
        self.orders[order_id] = None
        try:
            yield lambda: self.orders.get(order_id)
        finally:
            del self.orders[order_id]

    def left(self, order: order_pb2.Order) -> None:
        """A step got `order` back: kept if a call here waits for it, dropped otherwise."""
        if order.id in self.orders:
            self.orders[order.id] = order
