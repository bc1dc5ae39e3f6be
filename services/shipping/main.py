"""Composition root of the shipping service: the servicer, and the relay that publishes its events."""

from sagashop.events import relay
from sagashop.kit.db import database
from sagashop.kit.grpcserver import fault_rules, serve
from sagashop.kit.settings import Settings
from sagashop.v1 import shipping_pb2, shipping_pb2_grpc

from .servicer import ShippingServicer

SERVICE = shipping_pb2.DESCRIPTOR.services_by_name["ShippingService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "shipping")
    servicer = (shipping_pb2_grpc.add_ShippingServiceServicer_to_server, ShippingServicer(db), SERVICE)
    faults = fault_rules(settings, SERVICE, extra=(relay.CRASH_POINT,))  # its relay may be crashed
    relaying = relay.start(db, "shipping", settings, faults)
    try:
        await serve(settings, "shipping", servicer, faults=faults)
    finally:
        await relay.stop(relaying)
