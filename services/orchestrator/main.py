"""Composition root of the orchestrator: the saga log, the checkout saga, and the lease upkeep."""

import asyncio
import os
import socket
import uuid

from sagashop.backends import Backends
from sagashop.kit.db import database
from sagashop.kit.grpcserver import serve
from sagashop.kit.settings import Settings
from sagashop.saga import SagaRunner, SagaStore
from sagashop.v1 import orchestrator_pb2, orchestrator_pb2_grpc

from .checkout import checkout_saga
from .runs import SagaRuns
from .servicer import OrchestratorServicer
from .steps import CheckoutSteps

SERVICE = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "orchestrator")
    backends = Backends(settings, ("order", "inventory", "payment", "shipping"))
    store = SagaStore(db)
    saga = checkout_saga(CheckoutSteps(backends, settings.step_deadline_seconds))
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    runs = SagaRuns(store, SagaRunner(store), saga, owner, settings.saga_lease_seconds)
    upkeep = asyncio.create_task(runs.keep_leases())
    try:
        await serve((orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
                     OrchestratorServicer(store, runs, backends), SERVICE),
                    host=settings.bind, port=settings.orchestrator_port,
                    served_by=f"orchestrator@{settings.version}")
    finally:
        upkeep.cancel()
        await runs.stop()
        await store.release(owner)
        await backends.close()
        await db.dispose()
