"""The checkout's input and one small function per step and undo, each one RPC made safe to repeat by its key."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from sagashop.backends import Backends
from sagashop.kit.settings import SAGA_PARTS
from sagashop.saga import Run, Stopped
from sagashop.saga.definition import Action
from sagashop.v1 import inventory_pb2, order_pb2, payment_pb2, shipping_pb2
from sagashop.values import Address, PricedLine

from .canary import version_of


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
    def __init__(self, versions: Mapping[str, Backends], deadline: float) -> None:
        """`versions`: the clients of each version (v1, v2), each call carrying its version's route header."""
        self.deps = {part: {version: b.deps[part] for version, b in versions.items()} for part in SAGA_PARTS}
        self.deadline = deadline  # how long one step keeps retrying a service that does not answer

    async def call(self, run: Run[Checkout], service: str, method: str, request: Message) -> Any:
        """Calls the version of `service` the saga is pinned to (in its context)."""
        dep = self.deps[service][version_of(run.context, service)]
        return await dep.call(getattr(dep.stub, method), request, within=self.deadline)

    async def create_order(self, run: Run[Checkout]) -> None:
        c = run.input
        items = [{"sku": x.sku, "quantity": x.quantity, "unit_price_cents": x.unit_price_cents} for x in c.lines]
        await self.call(run, "order", "CreateOrder", order_pb2.CreateOrderRequest(
            id=c.order_id, user_id=c.user_id, items=items, currency=c.currency, address=vars(c.address)))

    async def reserve_stock(self, run: Run[Checkout]) -> None:
        await self.call(run, "inventory", "ReserveStock", inventory_pb2.ReserveStockRequest(
            idempotency_key=run.key, order_id=run.input.order_id, lines=run.input.line_pbs()))

    async def release_stock(self, run: Run[Checkout]) -> None:
        await self.call(run, "inventory", "ReleaseStock", inventory_pb2.ReleaseStockRequest(
            idempotency_key=run.key, order_id=run.input.order_id))

    async def charge_payment(self, run: Run[Checkout]) -> int:
        c = run.input
        await self.call(run, "payment", "Charge", payment_pb2.ChargeRequest(
            idempotency_key=run.key, order_id=c.order_id, amount_cents=c.total_cents, currency=c.currency,
            payment_token=c.payment_token))
        return c.total_cents

    async def refund_payment(self, run: Run[Checkout]) -> None:
        await self.call(run, "payment", "Refund", payment_pb2.RefundRequest(
            idempotency_key=run.key, order_id=run.input.order_id))

    async def create_shipment(self, run: Run[Checkout]) -> str:
        c = run.input
        shipment = await self.call(run, "shipping", "CreateShipment", shipping_pb2.CreateShipmentRequest(
            idempotency_key=run.key, order_id=c.order_id, address=vars(c.address), lines=c.line_pbs()))
        return str(shipment.tracking_number)

    async def cancel_shipment(self, run: Run[Checkout]) -> None:
        await self.call(run, "shipping", "CancelShipment", shipping_pb2.CancelShipmentRequest(
            idempotency_key=run.key, order_id=run.input.order_id))

    async def commit_stock(self, run: Run[Checkout]) -> None:
        await self.call(run, "inventory", "CommitStock", inventory_pb2.CommitStockRequest(
            idempotency_key=run.key_of("reserve_stock"), order_id=run.input.order_id))

    async def approve_order(self, run: Run[Checkout]) -> dict[str, Any]:
        """Returns the order (its result in the log, and the StartCheckout call's answer)."""
        return _as_result(await self.call(run, "order", "ApproveOrder", order_pb2.ApproveOrderRequest(
            id=run.input.order_id, tracking_number=run.results["create_shipment"],
            charged_cents=run.results["charge_payment"])))

    async def cancel_order(self, run: Run[Checkout]) -> None:
        await self.call(run, "order", "CancelOrder", order_pb2.CancelOrderRequest(id=run.input.order_id))

    async def reject_order(self, run: Run[Checkout]) -> dict[str, Any]:
        """Rejects with the saga's reason; the ledger says whether a charge was made and refunded (a charge
        whose reply was lost counts too). Returns the order, as approve_order does."""
        ledger = await self.call(run, "payment", "ListLedger", payment_pb2.ListLedgerRequest(
            order_id=run.input.order_id))
        refunded = sum(line.amount_cents for line in ledger.items if line.kind == "refund")
        return _as_result(await self.call(run, "order", "RejectOrder", order_pb2.RejectOrderRequest(
            id=run.input.order_id, failure_reason=run.reason, refunded=refunded > 0, refunded_cents=refunded)))


def _as_result(order: order_pb2.Order) -> dict[str, Any]:
    return json_format.MessageToDict(order, preserving_proto_field_name=True)


def order_of(stopped: Stopped) -> order_pb2.Order | None:
    """The order the checkout's last step (approve_order, or reject_order) got back in the run that stopped."""
    for step in ("approve_order", "reject_order"):
        if (order := stopped.results.get(step)) is not None:
            return json_format.ParseDict(order, order_pb2.Order())
    return None


def undo_of_checkout(undo: Action, step: str) -> Action:
    """The cancellation saga runs the checkout's undos with the checkout's own keys (its saga id is the order
    id), so each service finds the action it is asked to undo."""

    async def action(run: Run[Checkout]) -> None:
        await undo(Run(run.input.order_id, run.input, step, context=run.context))

    return action
