"""Composition root of the orchestrator: the saga log, the order sagas, and the lease upkeep."""

import asyncio
import os
import socket
import uuid

from sagashop.backends import Backends
from sagashop.kit.db import database
from sagashop.kit.grpcserver import fault_rules, serve
from sagashop.kit.settings import Settings
from sagashop.saga import SagaRunner, SagaStore
from sagashop.v1 import orchestrator_pb2, orchestrator_pb2_grpc

from .awaited import AwaitedOrders
from .checkout import cancellation_saga, checkout_saga
from .runs import SagaRuns
from .servicer import OrchestratorServicer
from .steps import CheckoutSteps

SERVICE = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "orchestrator")
    called = ("order", "inventory", "payment", "shipping")
    routes = {route: Backends(settings, called, route=route) for route in ("v1", "v2")}
    awaited = AwaitedOrders()
    steps = CheckoutSteps(routes, settings.step_deadline_seconds, awaited)
    sagas = checkout_saga(steps), cancellation_saga(steps)
    step_names = tuple({step.name for saga in sagas for step in (*saga.steps, *filter(None, [saga.on_rejected]))})
    faults = fault_rules(settings, SERVICE, extra=step_names)  # saga steps (rejection steps too) are crash points
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    store = SagaStore(db, owner, settings.saga_lease_seconds)
    runner = SagaRunner(store, park_after=settings.park_after_attempts,
                        crash_point=faults.crash_point if faults else None)
    runs = SagaRuns(store, runner, *sagas)
    upkeep = asyncio.create_task(runs.keep_leases())
    try:
        await serve(settings, "orchestrator", (orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
                                               OrchestratorServicer(store, runs, routes["v1"], awaited,
                                                                    settings.canary_percent),
                                               SERVICE), faults=faults)
    finally:
        upkeep.cancel()
        await runs.stop()
        for backends in routes.values():
            await backends.close()
        await db.dispose()
