"""OrchestratorService: starts checkouts (once per idempotency key) and cancellations, reports and operates
sagas. The sagas themselves run in SagaRuns."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sagashop.backends import Backends
from sagashop.kit.breaker import BREAKERS
from sagashop.kit.errors import Conflict, DomainError, Invalid, NotFound, Rejected, TooMany
from sagashop.kit.status import ServerContext
from sagashop.saga import (
    ABORTED,
    ACTIVE,
    COMPENSATING,
    RUNNING,
    TERMINAL,
    Crowded,
    SagaRecord,
    SagaStore,
    Stopped,
    new_record,
)
from sagashop.v1 import common_pb2, orchestrator_pb2_grpc, order_pb2
from sagashop.v1 import orchestrator_pb2 as pb
from sagashop.values import APPROVED, CANCELLED, MAX_SAGAS_LISTED

from .canary import Canary
from .intake import checkout_of, fingerprint
from .runs import Moves, SagaRuns
from .steps import order_of
from .views import saga_pb

WATCH_POLL = 1.0  # seconds between reads of a watched saga that another orchestrator runs


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self, store: SagaStore, runs: SagaRuns, moves: Moves, backends: Backends,
                 canary: Canary, max_pending: int) -> None:
        """`moves` tells of each move of a saga running here. `backends` serve the reads outside sagas: prices,
        and the order to cancel. `canary` pins each new saga, once: every step and undo of the saga is sent to the
        versions it was pinned to, whatever the weights become meanwhile. A customer may have `max_pending`
        checkouts under way at once."""
        self.store, self.runs, self.moves, self.backends = store, runs, moves, backends
        self.canary, self.max_pending = canary, max_pending

    async def StartCheckout(self, request: pb.StartCheckoutRequest,
                            context: ServerContext) -> pb.StartCheckoutReply:
        key = f"checkout:{request.user_id}:{request.idempotency_key}" if request.idempotency_key else None
        saga = self.runs.sagas["checkout"]
        try:
            checkout = await checkout_of(request, self.backends)
            try:  # the customer's checkouts under way are counted as the saga is created, in the same statement
                record, created = await self.store.create(new_record(
                    saga.name, checkout.order_id, checkout.order_id, key, fingerprint(request),
                    saga.encode(checkout), self.canary.pins(), subject=request.user_id),
                    first=saga.first, at_most=self.max_pending)
            except Crowded:
                raise TooMany(f"{self.max_pending} orders of this account are still PENDING; place more once one "
                              "has ended", retry_after=1) from None
        except DomainError:  # a repeat of an order that exists is answered as one, even if it cannot be placed now
            if key is None or (holder := await self.store.of_key(key)) is None:
                raise
            record, created = holder, False
        if not created and record.fingerprint != fingerprint(request):
            raise Conflict("this Idempotency-Key was used for another order", code="idempotency_conflict")
        if created:
            self.runs.start(record.id, new=record)
        stopped = await self._wait(record.id, max(request.wait_ms, 0) / 1000, until_order_exists=True)
        reply = pb.StartCheckoutReply(order_id=record.correlation_id, created=created, state=stopped.state)
        # the order as the run here left it; a repeat gets none (the caller reads the order)
        if created and stopped.state in TERMINAL and (order := order_of(stopped)) is not None:
            reply.order.CopyFrom(order)
        return reply

    async def CancelOrder(self, request: pb.CancellationRequest, context: ServerContext) -> pb.Saga:
        order = await self.backends.order.call(self.backends.order.stub.GetOrder,
                                               order_pb2.GetOrderRequest(id=request.order_id), within=2.0)
        checkout = await self.store.get(order.id)
        if order.status not in (APPROVED, CANCELLED) or checkout is None:
            raise Rejected(f"an order that is {order.status} cannot be cancelled", code="not_cancellable")
        saga_id = f"{order.id}-cancel"
        # pinned anew: the checkout's canaries may have been rolled back since
        record, created = await self.store.create(new_record("cancellation", saga_id, order.id,
                                                             f"cancel:{order.id}", "", checkout.input,
                                                             self.canary.pins()),
                                                  first=self.runs.sagas["cancellation"].first)
        if created:
            self.runs.start(saga_id, new=record)
        await self._wait(saga_id, max(request.wait_ms, 0) / 1000)
        return await self._saga(saga_id)

    async def GetSaga(self, request: pb.GetSagaRequest, context: ServerContext) -> pb.Saga:
        return await self._saga(request.saga_id or request.order_id)

    async def WatchSaga(self, request: pb.GetSagaRequest, context: ServerContext) -> AsyncIterator[pb.Saga]:
        saga_id = request.saga_id or request.order_id
        last = None
        while True:
            changed = self.moves.watch(saga_id)
            saga = await self._saga(saga_id)
            if saga != last:  # a step's success is only written with the run's next move
                yield saga
                last = saga
            if saga.state not in ACTIVE:
                self.moves.unwatch(saga_id)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), WATCH_POLL)

    async def ListSagas(self, request: pb.ListSagasRequest, context: ServerContext) -> pb.SagaList:
        if not 0 <= request.limit <= MAX_SAGAS_LISTED:
            raise Invalid(f"limit is 1 to {MAX_SAGAS_LISTED}")
        return pb.SagaList(items=[saga_pb(r) for r in await self.store.recent(request.state, request.limit or 100)])

    async def OperateSaga(self, request: pb.OperateSagaRequest, context: ServerContext) -> pb.Saga:
        record = await self._record(request.saga_id)
        state, reason = self._operated(record, request)
        if not await self.store.take_over(record.id, state, reason, action=request.action, note=request.reason,
                                          actor=request.actor or "operator"):
            raise Rejected(f"saga {record.id} is {record.state}, not parked", code="not_parked")
        if state in ACTIVE:
            self.runs.start(record.id)
        return await self._saga(record.id)

    async def ListBreakers(self, request: common_pb2.Empty, context: ServerContext) -> pb.BreakerList:
        return pb.BreakerList(items=[pb.Breaker(name=name, state=b.state, failures=b.failures)
                                     for name, b in sorted(BREAKERS.items())])

    def _operated(self, record: SagaRecord, request: pb.OperateSagaRequest) -> tuple[str, str]:
        """The state and failure reason an operator's action gives a parked saga."""
        if request.action == "retry":  # a saga parked while compensating has a failure reason
            return (COMPENSATING if record.failure_reason else RUNNING), record.failure_reason
        if request.action == "compensate":
            if not self.runs.sagas[record.name].on_rejected:
                raise Invalid(f"a {record.name} saga has no compensation; retry or abort it")
            return COMPENSATING, record.failure_reason or request.reason or "operator_compensated"
        if request.action == "abort":
            return ABORTED, request.reason or "operator_aborted"
        raise Invalid("action is retry, compensate or abort")

    async def _record(self, saga_id: str) -> SagaRecord:
        record = await self.store.get(saga_id) if saga_id else None
        if record is None:
            raise NotFound(f"no saga {saga_id!r}")
        return record

    async def _saga(self, saga_id: str) -> pb.Saga:
        record = await self._record(saga_id)
        return saga_pb(record, await self.store.steps(record.id), await self.store.audit(record.id))

    async def _wait(self, saga_id: str, seconds: float, *, until_order_exists: bool = False) -> Stopped:
        """Waits until the saga ends (or is parked) or `seconds` pass, and for a checkout in any case until its
        order exists. A saga running here is awaited (and its run's results are known); one running elsewhere is
        read again at each move here or every so often."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        if (stopped := await self.runs.settled(saga_id, seconds)) is not None and stopped.state not in ACTIVE:
            return stopped
        while True:
            changed = self.moves.watch(saga_id)
            record = await self._record(saga_id)
            remaining = deadline - loop.time()
            if record.state not in ACTIVE:
                self.moves.unwatch(saga_id)
                return Stopped(record.state)
            if remaining <= 0 and (not until_order_exists or await self._ordered(saga_id)):
                return Stopped(record.state)
            with contextlib.suppress(TimeoutError):  # a saga another orchestrator runs sends us no events
                await asyncio.wait_for(changed.wait(), max(remaining, 0.05))

    async def _ordered(self, saga_id: str) -> bool:
        """Whether the checkout's order exists: its create_order succeeded in the run here (written or not yet:
        the order service has it) or in the log."""
        return self.runs.runner.succeeded_here(saga_id, "create_order") or any(
            s.name == "create_order" and s.status == "SUCCEEDED" for s in await self.store.steps(saga_id))
