"""Composition root of the notification service: the mailer (its SMTP URL checked before anything starts), the
consumer of the domain events that sends the emails, and the servicer that lists them."""

import asyncio

from sagashop.events import consumer
from sagashop.kit.db import database
from sagashop.kit.grpcserver import serve
from sagashop.kit.schema import CannotStart
from sagashop.kit.settings import Settings
from sagashop.v1 import notification_pb2, notification_pb2_grpc

from .handlers import Notifier
from .mailer import BadSmtpUrl, Mailer
from .servicer import NotificationServicer

SERVICE = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


async def main(settings: Settings) -> None:
    try:
        mailer = Mailer(settings.smtp_url, settings.mail_from)
    except BadSmtpUrl as e:
        raise CannotStart(str(e)) from None
    db = await database(settings, "notification")
    servicer = (notification_pb2_grpc.add_NotificationServiceServicer_to_server, NotificationServicer(db), SERVICE)
    consuming = consumer.start(db, "notification", settings, Notifier(mailer).handlers())
    try:
        await serve(settings, "notification", servicer)
    finally:
        await consumer.stop(consuming)
        await asyncio.to_thread(mailer.close)  # its SMTP session, with a QUIT
