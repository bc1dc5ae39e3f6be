"""What each event does here, inside the consumer's transaction (with its inbox row): remember what a later email
needs, and send the email a transition calls for, once. An email is recorded by its event's handler and sent
when the consumer's whole batch has applied, before the commit; if the send fails the record rolls back with the
rest and the events come again. A customer or order not known yet raises too:
its event, on another service's relay, arrives soon."""

import logging
from functools import partial

from prometheus_client import Counter
from sqlalchemy.engine import Connection

from sagashop.events import consumer
from sagashop.events.catalog import (
    OrderApproved,
    OrderCancelled,
    OrderPlaced,
    OrderRejected,
    Payload,
    ShipmentCreated,
    UserRegistered,
)
from sagashop.events.envelope import Envelope
from sagashop.kit.db import off_the_loop

from . import domain
from .domain import Customer, Email, NotKnownYet
from .mailer import Mailer
from .repository import Notifications

SENT = Counter("sagashop_notifications_sent_total", "emails sent, by kind", ["kind"])
log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer

    def handlers(self) -> consumer.Handlers:
        """The consumer's handlers: event type -> (its payload model, the handler). Those of an approval and a
        shipment take the order's lock first: each must see what the other committed (two replicas may apply them
        side by side), or the shipment's email would wait for the other forever."""
        handlers: list[tuple[type[Payload], consumer.Handler]] = [
            (UserRegistered, self.user_registered), (OrderPlaced, self.order_placed),
            (OrderApproved, self.order_approved), (OrderRejected, self.order_rejected),
            (OrderCancelled, self.order_cancelled), (ShipmentCreated, self.shipment_created)]
        return {payload.event_type: (payload, handler) for payload, handler in handlers}

    def user_registered(self, conn: Connection, event: Envelope[UserRegistered]) -> None:
        p = event.payload
        Notifications(conn).add_customer(Customer(p.user_id, p.email, p.name))

    def order_placed(self, conn: Connection, event: Envelope[OrderPlaced]) -> None:
        Notifications(conn).add_order(event.payload.order_id, event.payload.user_id)

    def order_approved(self, conn: Connection, event: Envelope[OrderApproved]) -> consumer.Effect | None:
        p, repo = event.payload, Notifications(conn)
        repo.lock_order(p.order_id)
        to = customer(repo, p.user_id)
        emails = [domain.approved(to, p.order_id, p.lines, p.total_cents, p.currency)]
        repo.add_order(p.order_id, p.user_id)  # so its shipment's email need not wait for order.placed
        repo.add_approved(p.order_id)
        if (tracking := repo.tracking_number(p.order_id)) is not None:  # its shipment came first
            emails.append(domain.shipment_created(to, p.order_id, tracking))
        return self.send(repo, emails, event.event_id)

    def order_rejected(self, conn: Connection, event: Envelope[OrderRejected]) -> consumer.Effect | None:
        p, repo = event.payload, Notifications(conn)
        email = domain.rejected(customer(repo, p.user_id), p.order_id, p.failure_reason, p.refunded_cents,
                                p.currency)
        return self.send(repo, [email], event.event_id)

    def order_cancelled(self, conn: Connection, event: Envelope[OrderCancelled]) -> consumer.Effect | None:
        p, repo = event.payload, Notifications(conn)
        email = domain.cancelled(customer(repo, p.user_id), p.order_id, p.lines, p.total_cents, p.currency)
        return self.send(repo, [email], event.event_id)

    def shipment_created(self, conn: Connection, event: Envelope[ShipmentCreated]) -> consumer.Effect | None:
        """Told only once the order is approved too: a shipment its checkout then cancelled is never told."""
        p, repo = event.payload, Notifications(conn)
        repo.lock_order(p.order_id)
        repo.add_shipment(p.order_id, p.tracking_number)
        if not repo.is_approved(p.order_id):  # order.approved sends it when it comes
            return None
        if (user_id := repo.user_of(p.order_id)) is None:
            raise NotKnownYet(f"order {p.order_id} is not known yet (its order.placed has not arrived)")
        return self.send(repo, [domain.shipment_created(customer(repo, user_id), p.order_id, p.tracking_number)],
                         event.event_id)

    def send(self, repo: Notifications, emails: list[Email], event_id: str) -> consumer.Effect | None:
        """Records the emails not sent before (for this event or another of the same transition); what sends
        them, once the consumer's whole batch has applied."""
        new = [email for email in emails if repo.add_notification(email, event_id)]
        if not new:
            return None
        conn = repo.conn

        def send() -> None:
            for email in new:
                off_the_loop(conn, partial(self.mailer.send, email))  # blocking: not on the event loop
                SENT.labels(email.kind).inc()
                log.info("sent %s for order %s", email.kind, email.order_id)

        return send


def customer(repo: Notifications, user_id: str) -> Customer:
    if (found := repo.customer(user_id)) is None:
        raise NotKnownYet(f"customer {user_id} is not known yet (their user.registered has not arrived)")
    return found
