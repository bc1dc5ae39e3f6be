"""NotificationService: what was sent for an order, read from the notifications the consumer recorded."""

from sagashop.kit.clock import rfc3339
from sagashop.kit.db import Database
from sagashop.kit.status import ServerContext
from sagashop.v1 import notification_pb2 as pb
from sagashop.v1 import notification_pb2_grpc

from .domain import valid_order_id
from .repository import Notifications


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ListNotifications(self, request: pb.ListNotificationsRequest,
                                context: ServerContext) -> pb.NotificationList:
        order_id = valid_order_id(request.order_id)
        sent = await self.db.autocommit(lambda conn: Notifications(conn).of_order(order_id))
        return pb.NotificationList(items=[
            pb.Notification(id=n.id, order_id=n.order_id, to=n.to, kind=n.kind, subject=n.subject,
                            sent_at=rfc3339(n.sent_at)) for n in sent])
