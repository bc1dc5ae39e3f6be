"""Composition root of the order service: the servicer, and the relay that publishes its events."""

from sagashop.events import relay
from sagashop.kit.db import database
from sagashop.kit.grpcserver import serve
from sagashop.kit.settings import Settings
from sagashop.v1 import order_pb2, order_pb2_grpc

from .servicer import OrderServicer

SERVICE = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "order")
    servicer = (order_pb2_grpc.add_OrderServiceServicer_to_server, OrderServicer(db), SERVICE)
    relaying = relay.start(db, "order", settings)
    try:
        await serve(settings, "order", servicer)
    finally:
        await relay.stop(relaying)
