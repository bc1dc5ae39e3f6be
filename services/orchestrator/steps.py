"""The checkout's input and one small function per step and undo, each one RPC made safe to repeat by its key."""

from dataclasses import dataclass

from sagashop.backends import Backends
from sagashop.saga import Run
from sagashop.saga.definition import Action
from sagashop.v1 import inventory_pb2, order_pb2, payment_pb2, shipping_pb2
from sagashop.values import Address, PricedLine

from .awaited import AwaitedOrders


@dataclass(frozen=True)
class Checkout:
    """The saga's one input; fields are only ever added."""

    order_id: str
    user_id: str
    lines: tuple[PricedLine, ...]
    currency: str
    payment_token: str
    address: Address

    @property
    def total_cents(self) -> int:
        return sum(line.quantity * line.unit_price_cents for line in self.lines)

    def line_pbs(self) -> list[dict[str, object]]:
        return [{"sku": line.sku, "quantity": line.quantity} for line in self.lines]


class CheckoutSteps:
    """Each step calls the services of the version set its saga is pinned to (`Run.route`)."""

    def __init__(self, routes: dict[str, Backends], deadline: float, awaited: AwaitedOrders | None = None) -> None:
        self.routes = routes
        self.deadline = deadline  # how long one step keeps retrying a service that does not answer
        self.awaited = awaited or AwaitedOrders()  # where the last step leaves the order for a waiting caller

    async def create_order(self, run: Run[Checkout]) -> None:
        c = run.input
        items = [{"sku": x.sku, "quantity": x.quantity, "unit_price_cents": x.unit_price_cents} for x in c.lines]
        dep = self.routes[run.route].order
        await dep.call(dep.stub.CreateOrder, order_pb2.CreateOrderRequest(
            id=c.order_id, user_id=c.user_id, items=items, currency=c.currency, address=vars(c.address),
        ), within=self.deadline)

    async def reserve_stock(self, run: Run[Checkout]) -> None:
        dep = self.routes[run.route].inventory
        await dep.call(dep.stub.ReserveStock, inventory_pb2.ReserveStockRequest(
            idempotency_key=run.key, order_id=run.input.order_id, lines=run.input.line_pbs()), within=self.deadline)

    async def release_stock(self, run: Run[Checkout]) -> None:
        dep = self.routes[run.route].inventory
        await dep.call(dep.stub.ReleaseStock, inventory_pb2.ReleaseStockRequest(
            idempotency_key=run.key, order_id=run.input.order_id), within=self.deadline)

    async def charge_payment(self, run: Run[Checkout]) -> int:
        c = run.input
        dep = self.routes[run.route].payment
        await dep.call(dep.stub.Charge, payment_pb2.ChargeRequest(
            idempotency_key=run.key, order_id=c.order_id, amount_cents=c.total_cents, currency=c.currency,
            payment_token=c.payment_token), within=self.deadline)
        return c.total_cents

    async def refund_payment(self, run: Run[Checkout]) -> None:
        dep = self.routes[run.route].payment
        await dep.call(dep.stub.Refund, payment_pb2.RefundRequest(
            idempotency_key=run.key, order_id=run.input.order_id), within=self.deadline)

    async def create_shipment(self, run: Run[Checkout]) -> str:
        c = run.input
        dep = self.routes[run.route].shipping
        shipment = await dep.call(dep.stub.CreateShipment, shipping_pb2.CreateShipmentRequest(
            idempotency_key=run.key, order_id=c.order_id, address=vars(c.address), lines=c.line_pbs(),
        ), within=self.deadline)
        return str(shipment.tracking_number)

    async def cancel_shipment(self, run: Run[Checkout]) -> None:
        dep = self.routes[run.route].shipping
        await dep.call(dep.stub.CancelShipment, shipping_pb2.CancelShipmentRequest(
            idempotency_key=run.key, order_id=run.input.order_id), within=self.deadline)

    async def commit_stock(self, run: Run[Checkout]) -> None:
        dep = self.routes[run.route].inventory
        await dep.call(dep.stub.CommitStock, inventory_pb2.CommitStockRequest(
            idempotency_key=run.key_of("reserve_stock"), order_id=run.input.order_id), within=self.deadline)

    async def approve_order(self, run: Run[Checkout]) -> None:
        dep = self.routes[run.route].order
        self.awaited.left(await dep.call(dep.stub.ApproveOrder, order_pb2.ApproveOrderRequest(
            id=run.input.order_id, tracking_number=run.results["create_shipment"],
            charged_cents=run.results["charge_payment"]), within=self.deadline))

    async def cancel_order(self, run: Run[Checkout]) -> None:
        dep = self.routes[run.route].order
        await dep.call(dep.stub.CancelOrder, order_pb2.CancelOrderRequest(id=run.input.order_id),
                       within=self.deadline)

    async def reject_order(self, run: Run[Checkout]) -> None:
        """Rejects with the saga's reason; the ledger says whether a charge was made and refunded (a charge
        whose reply was lost counts too). The order is created first if the saga failed before it was."""
        await self.create_order(run)
        dep = self.routes[run.route].payment
        ledger = await dep.call(dep.stub.ListLedger, payment_pb2.ListLedgerRequest(
            order_id=run.input.order_id), within=self.deadline)
        refunded = sum(line.amount_cents for line in ledger.items if line.kind == "refund")
        dep = self.routes[run.route].order
        self.awaited.left(await dep.call(dep.stub.RejectOrder, order_pb2.RejectOrderRequest(
            id=run.input.order_id, failure_reason=run.reason, refunded=refunded > 0, refunded_cents=refunded,
        ), within=self.deadline))


def undo_of_checkout(undo: Action, step: str) -> Action:
    """The cancellation saga runs the checkout's undos with the checkout's own keys (its saga id is the order
    id), so each service finds the action it is asked to undo."""

    async def action(run: Run[Checkout]) -> None:
        await undo(Run(run.input.order_id, run.input, step, route=run.route))

    return action
