"""Composition root of the orchestrator: the saga log, the order sagas, and the lease upkeep."""

import asyncio
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sagashop.backends import Backends
from sagashop.kit.calls import CallRecord
from sagashop.kit.clock import now
from sagashop.kit.db import database
from sagashop.kit.grpcserver import fault_rules, serve
from sagashop.kit.settings import SAGA_PARTS, Settings
from sagashop.saga import SagaRunner, SagaStore, StepRecord, Telemetry, new_record
from sagashop.saga.records import STEP_RUNNING
from sagashop.v1 import orchestrator_pb2, orchestrator_pb2_grpc

from .canary import STABLE, VERSION_KEY, VERSIONS, Canary, Weights
from .checkout import cancellation_saga, checkout_saga
from .intake import checkout_of
from .runs import Moves, SagaRuns
from .servicer import OrchestratorServicer
from .steps import CheckoutSteps

SERVICE = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name
# a saga's spans carry its order's id; its metrics tell, per part, the sagas on its canary (payment_version="v2",
# ...) from the others
TELEMETRY = Telemetry(correlation="order.id", labels=dict.fromkeys(VERSION_KEY.values(), VERSIONS))


async def main(settings: Settings) -> None:
    db = await database(settings, "orchestrator")
    versions = {version: Backends(settings, "orchestrator", SAGA_PARTS, route=version) for version in VERSIONS}
    canary = Canary(Weights(settings.canary_weights_dir), versions["v2"].deps)
    steps = CheckoutSteps(versions, settings.step_deadline_seconds)
    sagas = checkout_saga(steps), cancellation_saga(steps)
    step_names = tuple({step.name for saga in sagas for step in saga.every_step})
    faults = fault_rules(settings, SERVICE, extra=step_names)  # saga steps are crash points
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    store = SagaStore(db, owner, settings.saga_lease_seconds)
    moves = Moves()
    runner = SagaRunner(store, park_after=settings.park_after_attempts, calls=CallRecord, on_move=moves.moved,
                        crash_point=faults.crash_point if faults else None, telemetry=TELEMETRY)
    runs = SagaRuns(store, runner, *sagas)
    upkeep = asyncio.create_task(runs.keep_leases()), asyncio.create_task(canary.watch())
    servicer = OrchestratorServicer(store, runs, moves, versions["v1"], canary, settings.max_pending_orders)
    try:
        await serve(settings, "orchestrator", (orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
                                               servicer, SERVICE), faults=faults)
    finally:
        for task in upkeep:
            task.cancel()
        await runs.stop()
        for backends in versions.values():
            await backends.close()
        await db.dispose()


Checkout = Callable[[orchestrator_pb2.StartCheckoutRequest], Awaitable[tuple[str, str]]]


@asynccontextmanager
async def checkout_without_log(settings: Settings) -> AsyncIterator[Checkout]:
    """The durability baseline (`sagashop bench --without-log`): the checkout saga run in the caller's process,
    by the orchestrator's own steps and runner, against the shop's services (v1), with a saga log that keeps
    nothing: the same calls without a single log write, nor the hop to the orchestrator. Yields a function that
    places one checkout and returns its state and order id."""
    backends = Backends(settings, "orchestrator", SAGA_PARTS, route="v1")
    saga = checkout_saga(CheckoutSteps({"v1": backends}, settings.step_deadline_seconds))
    runner = SagaRunner(_ForgetfulLog(), calls=CallRecord, telemetry=TELEMETRY)  # type: ignore[arg-type]

    async def place(request: orchestrator_pb2.StartCheckoutRequest) -> tuple[str, str]:
        checkout = await checkout_of(request, backends)
        record = new_record(saga.name, checkout.order_id, checkout.order_id, None, "", saga.encode(checkout),
                            dict(STABLE))
        return (await runner.run(saga, record, history=[])).state, checkout.order_id

    try:
        yield place
    finally:
        await backends.close()


class _ForgetfulLog:
    """A saga log that writes nothing anywhere; it remembers in memory only which steps started, for the undos."""

    def __init__(self) -> None:
        self.started: dict[str, list[StepRecord]] = defaultdict(list)

    async def advance(self, saga_id: str, *, started: Sequence[tuple[str, str]] = (), **_: Any) -> None:
        self.started[saga_id].extend(StepRecord(*step, STEP_RUNNING, 0, "", "", None, now(), None) for step in started)

    async def steps(self, saga_id: str) -> list[StepRecord]:
        return self.started[saga_id]
