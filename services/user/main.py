"""Composition root of the user service: the servicer, and the relay that publishes its events."""

from sagashop.events import relay
from sagashop.kit.db import database
from sagashop.kit.grpcserver import fault_rules, serve
from sagashop.kit.settings import Settings
from sagashop.v1 import user_pb2, user_pb2_grpc

from .servicer import UserServicer, ensure_admin

SERVICE = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "user")
    await ensure_admin(db, settings.admin_email, settings.admin_password)
    servicer = (user_pb2_grpc.add_UserServiceServicer_to_server, UserServicer(db), SERVICE)
    faults = fault_rules(settings, SERVICE, extra=(relay.CRASH_POINT,))  # its relay may be crashed
    relaying = relay.start(db, "user", settings, faults)
    try:
        await serve(settings, "user", servicer, faults=faults)
    finally:
        await relay.stop(relaying)
