"""Composition root of the reporting service: the servicer, and the consumer that applies the events to its read
models."""

from sagashop.events import consumer
from sagashop.events.streams import Streams
from sagashop.kit.db import database
from sagashop.kit.grpcserver import serve
from sagashop.kit.settings import Settings
from sagashop.v1 import reporting_pb2, reporting_pb2_grpc

from .repository import HANDLERS
from .servicer import CONSUMER, ReportingServicer

SERVICE = reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name


async def main(settings: Settings) -> None:
    db = await database(settings, "reporting")
    servicer = ReportingServicer(db, settings.nats_url, Streams.of(settings))
    consuming = consumer.start(db, CONSUMER, settings, HANDLERS)
    try:
        await serve(settings, "reporting", (reporting_pb2_grpc.add_ReportingServiceServicer_to_server, servicer,
                                            SERVICE))
    finally:
        await consumer.stop(consuming)
