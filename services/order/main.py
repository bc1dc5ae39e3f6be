"""Composition root of the order service: the servicer, and the relay that publishes its events."""

from sagashop.events import relay
from sagashop.kit.db import database
from sagashop.kit.grpcserver import fault_rules, serve
from sagashop.kit.settings import Settings
from sagashop.v1 import order_pb2, order_pb2_grpc

from .servicer import OrderServicer

SERVICE = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "order")
    servicer = (order_pb2_grpc.add_OrderServiceServicer_to_server, OrderServicer(db), SERVICE)
    faults = fault_rules(settings, SERVICE, extra=(relay.CRASH_POINT,))  # its relay may be crashed
    relaying = relay.start(db, "order", settings, faults)
    try:
        await serve(settings, "order", servicer, faults=faults)
    finally:
        await relay.stop(relaying)
