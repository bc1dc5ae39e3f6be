"""Composition root of the payment service: the servicer, and the relay that publishes its events."""

from sagashop.events import relay
from sagashop.kit.db import database
from sagashop.kit.grpcserver import fault_rules, serve
from sagashop.kit.settings import Settings
from sagashop.v1 import payment_pb2, payment_pb2_grpc

from .servicer import PaymentServicer

SERVICE = payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "payment")
    servicer = (payment_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentServicer(db), SERVICE)
    faults = fault_rules(settings, SERVICE, extra=(relay.CRASH_POINT,))  # its relay may be crashed
    relaying = relay.start(db, "payment", settings, faults)
    try:
        await serve(settings, "payment", servicer, faults=faults)
    finally:
        await relay.stop(relaying)
