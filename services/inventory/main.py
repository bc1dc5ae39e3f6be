"""Composition root of the inventory service."""

from sagashop.kit.db import database
from sagashop.kit.grpcserver import serve
from sagashop.kit.settings import Settings
from sagashop.v1 import inventory_pb2, inventory_pb2_grpc

from .servicer import InventoryServicer

SERVICE = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "inventory")
    await serve((inventory_pb2_grpc.add_InventoryServiceServicer_to_server, InventoryServicer(db), SERVICE),
                host=settings.bind, port=settings.inventory_port, served_by=f"inventory@{settings.version}")
