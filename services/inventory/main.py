"""Composition root of the inventory service: the servicer, the sweeper that releases expired reservations, and
the relay that publishes its events."""

import asyncio

from sagashop.events import relay
from sagashop.kit.db import database
from sagashop.kit.grpcserver import fault_rules, serve
from sagashop.kit.settings import Settings
from sagashop.v1 import inventory_pb2, inventory_pb2_grpc

from .servicer import InventoryServicer
from .sweeper import Sweeper

SERVICE = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "inventory")
    servicer = (inventory_pb2_grpc.add_InventoryServiceServicer_to_server, InventoryServicer(db), SERVICE)
    sweeper = Sweeper(db, settings.reservation_ttl_seconds)
    sweeping = asyncio.create_task(sweeper.sweep_forever(settings.sweep_interval_seconds))
    faults = fault_rules(settings, SERVICE, extra=(relay.CRASH_POINT,))  # its relay may be crashed
    relaying = relay.start(db, "inventory", settings, faults)
    try:
        await serve(settings, "inventory", servicer, faults=faults)
    finally:
        await relay.stop(relaying)
        sweeping.cancel()
        await asyncio.gather(sweeping, return_exceptions=True)  # a cancelled sweep rolls back first
        await db.dispose()
