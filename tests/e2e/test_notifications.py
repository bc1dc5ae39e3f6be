"""A checkout's customer gets one email per transition of the order, sent by the notification service from the
domain events, through the SMTP sink `sagashop up` runs, which keeps each under the data directory."""

import time
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import grpc

from sagashop.v1 import notification_pb2, notification_pb2_grpc

WITHIN = 30.0  # seconds for the events to reach the notification service (relays, then its consumer)


def notifications(shop, order_id: str) -> list[notification_pb2.Notification]:
    """ListNotifications, straight over gRPC, as the gateway calls it."""
    with grpc.insecure_channel(f"127.0.0.1:{shop.env['SAGASHOP_NOTIFICATION_PORT']}") as channel:
        stub = notification_pb2_grpc.NotificationServiceStub(channel)
        return list(stub.ListNotifications(notification_pb2.ListNotificationsRequest(order_id=order_id),
                                           timeout=5, metadata=shop.signed).items)


def sent(shop, order_id: str, kinds: list[str]) -> list[notification_pb2.Notification]:
    """The order's notifications, once they are `kinds` (oldest first)."""
    deadline = time.monotonic() + WITHIN
    while True:
        found = notifications(shop, order_id)
        if [n.kind for n in found] == kinds:
            return found
        assert time.monotonic() < deadline, f"{order_id}: {[n.kind for n in found]}, not {kinds}, after {WITHIN}s"
        time.sleep(0.3)


def kept(shop, notification: notification_pb2.Notification) -> str:
    """The email as the sink kept it: its To header and its text."""
    path = Path(shop.env["SAGASHOP_DATA_DIR"]) / "mail" / f"{notification.id}@sagashop.eml"
    email = message_from_bytes(path.read_bytes(), policy=default)
    assert email["Subject"] == notification.subject
    return f"To: {email['To']}\n{email.get_content()}"


def test_an_approved_checkout_emails_its_customer_its_confirmation_then_its_shipment_once_each(shop):
    customer = shop.run(shop.client.sign_up("Grace Hopper"))
    order = shop.place_order({shop.product(stock=2, price_cents=1_250): 2}, user=customer.headers)
    assert shop.settled(order["id"])["status"] == "APPROVED"

    approved, shipped = sent(shop, order["id"], ["order_approved", "shipment_created"])
    assert {approved.to, shipped.to} == {customer.email}
    confirmation = kept(shop, approved)
    assert f"To: Grace Hopper <{customer.email}>" in confirmation
    assert order["id"] in confirmation and "Total: 25.00 EUR" in confirmation
    assert "Tracking number: " in kept(shop, shipped)
    time.sleep(1)  # a late duplicate would show by now
    assert [n.kind for n in notifications(shop, order["id"])] == ["order_approved", "shipment_created"]


def test_a_declined_payment_emails_the_reason_and_no_shipment(shop):
    customer = shop.run(shop.client.sign_up("Alan"))
    order = shop.place_order({shop.product(stock=2): 1}, user=customer.headers, token="tok_declined")
    assert shop.settled(order["id"])["status"] == "REJECTED"

    [rejected] = sent(shop, order["id"], ["order_rejected"])
    assert "your payment was declined" in kept(shop, rejected)
