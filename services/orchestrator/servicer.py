"""OrchestratorService: starts checkouts (once per idempotency key) and reports their sagas."""

import asyncio
import contextlib
import hashlib
import uuid

import grpc

from sagashop.backends import Backends
from sagashop.kit.clock import rfc3339
from sagashop.kit.errors import Conflict, Invalid, NotFound
from sagashop.saga import TERMINAL, SagaStore, new_record
from sagashop.v1 import inventory_pb2, orchestrator_pb2_grpc
from sagashop.v1 import orchestrator_pb2 as pb
from sagashop.values import Address, Line, valid_address, valid_lines

from .runs import SagaRuns
from .steps import Checkout, PricedLine

PRICING_WITHIN = 3.0  # seconds to get prices before the request fails as unavailable


def fingerprint(request: pb.StartCheckoutRequest) -> str:
    """What makes two requests the same order: everything but the key and the wait."""
    body = pb.StartCheckoutRequest(user_id=request.user_id, lines=request.lines,
                                   payment_token=request.payment_token, address=request.address)
    return hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self, store: SagaStore, runs: SagaRuns, backends: Backends) -> None:
        self.store, self.runs, self.backends = store, runs, backends

    async def StartCheckout(self, request: pb.StartCheckoutRequest,
                            context: grpc.aio.ServicerContext) -> pb.StartCheckoutReply:
        checkout = await self._checkout(request)
        key = f"checkout:{request.user_id}:{request.idempotency_key}" if request.idempotency_key else None
        record, created = await self.store.create(
            new_record("checkout", checkout.order_id, checkout.order_id, key, fingerprint(request),
                       self.runs.saga.encode(checkout)), owner=self.runs.owner, lease=self.runs.lease)
        if not created and record.fingerprint != fingerprint(request):
            raise Conflict("this Idempotency-Key was used for another order", code="idempotency_conflict")
        if created:
            self.runs.start(record.id)
        state = await self._wait(record.id, max(request.wait_ms, 0) / 1000)
        return pb.StartCheckoutReply(order_id=record.correlation_id, created=created, state=state)

    async def GetSaga(self, request: pb.GetSagaRequest, context: grpc.aio.ServicerContext) -> pb.Saga:
        record = await self.store.get(request.order_id) if request.order_id else None
        if record is None:
            raise NotFound(f"no saga for order {request.order_id!r}")
        steps = [pb.SagaStep(name=s.name, action=s.action, status=s.status, attempts=s.attempts,
                             handled_by=s.handled_by, error=s.error, started_at=rfc3339(s.started_at),
                             finished_at=rfc3339(s.finished_at)) for s in await self.store.steps(record.id)]
        return pb.Saga(saga_id=record.id, state=record.state, failure_reason=record.failure_reason, steps=steps)

    async def _checkout(self, request: pb.StartCheckoutRequest) -> Checkout:
        """Validates the request and captures today's prices (an unknown SKU is priced 0: its reservation
        fails with unknown_product, so the order is rejected, not lost)."""
        if not request.user_id:
            raise Invalid("user_id is required")
        if not 1 <= len(request.payment_token) <= 64:
            raise Invalid("payment_token must be 1 to 64 characters")
        lines = valid_lines([Line(x.sku, x.quantity) for x in request.lines])
        a = request.address
        address = valid_address(Address(a.name, a.line1, a.city, a.postal_code, a.country))
        inventory = self.backends.inventory
        products = await inventory.call(inventory.stub.ListProducts, inventory_pb2.ListProductsRequest(
            skus=[line.sku for line in lines]), within=PRICING_WITHIN)
        prices = {p.sku: (p.price_cents, p.currency) for p in products.items}
        currencies = {currency for _, currency in prices.values()}
        if len(currencies) > 1:
            raise Invalid(f"an order is paid in one currency, these lines are in {', '.join(sorted(currencies))}")
        return Checkout(
            order_id=uuid.uuid4().hex, user_id=request.user_id, currency=currencies.pop() if currencies else "EUR",
            lines=tuple(PricedLine(x.sku, x.quantity, prices.get(x.sku, (0, ""))[0]) for x in lines),
            payment_token=request.payment_token, address=address)

    async def _wait(self, saga_id: str, seconds: float) -> str:
        """Waits until the saga ends or `seconds` pass, and in any case until its order exists."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            changed = self.runs.runner.watch(saga_id)
            record = await self.store.get(saga_id)
            assert record is not None
            remaining = deadline - loop.time()
            if record.state in TERMINAL or (remaining <= 0 and await self._order_created(saga_id)):
                self.runs.runner.changed.pop(saga_id, None)  # no waiter left (a rare concurrent one times out)
                return record.state
            with contextlib.suppress(TimeoutError):  # a saga another orchestrator runs sends us no events
                await asyncio.wait_for(changed.wait(), max(remaining, 0.05))

    async def _order_created(self, saga_id: str) -> bool:
        return any(s.name == "create_order" and s.status == "SUCCEEDED" for s in await self.store.steps(saga_id))
