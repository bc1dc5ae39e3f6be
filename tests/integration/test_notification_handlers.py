"""The notification handlers on each database, sending to a real SMTP sink: one email per order transition however
often and in whatever order the events come; a failed send or an unknown customer records nothing and raises, so
the consumer delivers the event again."""

import asyncio
import contextlib
import random
import smtplib
import threading
from email import message_from_bytes
from email.policy import default
from typing import Any

import pytest
from aiosmtpd import smtp
from aiosmtpd.controller import Controller

from sagashop.events.catalog import (
    OrderApproved,
    OrderCancelled,
    OrderPlaced,
    OrderRejected,
    Payload,
    PricedItem,
    ShipmentCancelled,
    ShipmentCreated,
    UserRegistered,
)
from sagashop.events.delivery import Delivery, apply_all
from sagashop.events.envelope import Envelope, envelope
from sagashop.kit.db import database, off_the_loop
from sagashop.kit.errors import Invalid
from sagashop.v1 import notification_pb2 as pb
from sagashop.v1 import notification_pb2_grpc
from services.notification import domain
from services.notification.domain import Customer, NotKnownYet
from services.notification.handlers import Notifier
from services.notification.mailer import Mailer
from services.notification.main import SERVICE
from services.notification.repository import Notifications
from services.notification.servicer import NotificationServicer
from tools.local.mailsink import Keeper
from tools.local.parts import free_port

LINES = [PricedItem(sku="LAMP", quantity=2, unit_price_cents=3_900)]
ORDER = {"user_id": "u1", "lines": LINES, "total_cents": 7_800, "currency": "EUR"}


class CountingKeeper(Keeper):
    """The sink of `sagashop up`, counting what it received (it keeps a repeated Message-ID once)."""

    received: list[str] = []
    sessions: list[object] = []  # the client end of the SMTP session each message came over

    async def handle_DATA(self, server: smtp.SMTP, session: smtp.Session, envelope: smtp.Envelope) -> str:
        self.received.append(message_from_bytes(envelope.original_content or b"", policy=default)["Subject"])
        self.sessions.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def sink(tmp_path):
    keeper = CountingKeeper(tmp_path / "mail")
    keeper.received, keeper.sessions = [], []
    controller = Controller(keeper, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield keeper, f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


@pytest.fixture
async def db(settings):
    db = await database(settings, "notification")
    yield db
    await db.dispose()


async def deliver(db, url: str, *events: Payload | Envelope[Any]) -> None:
    """Each event (a payload: in a new envelope) applied as the consumer applies it, in a transaction of its own:
    noted in the inbox, then its handler, if it has one."""
    handlers = Notifier(Mailer(url, "sagashop <orders@sagashop.local>")).handlers()
    for seq, event in enumerate(events, 1):
        data = (event if isinstance(event, Envelope) else envelope(event)).model_dump_json().encode()
        delivery = Delivery.read(data, "test", {}, seq, handlers)
        if delivery.handler is not None:
            await db.transaction(lambda conn, d=delivery: apply_all(conn, [d], "notification"), tries=1)


async def kinds(db, order_id: str) -> list[str]:
    return [n.kind for n in await db.autocommit(lambda conn: Notifications(conn).of_order(order_id))]


def registered(user_id: str = "u1") -> UserRegistered:
    return UserRegistered(user_id=user_id, email=f"{user_id}@example.com", name="Ada")


def approved(order_id: str, user_id: str = "u1") -> OrderApproved:
    return OrderApproved(order_id=order_id, charged_cents=7_800, tracking_number=f"TRK-{order_id}",
                         **{**ORDER, "user_id": user_id})


def shipped(order_id: str) -> ShipmentCreated:
    return ShipmentCreated(shipment_id=f"s-{order_id}", order_id=order_id, tracking_number=f"TRK-{order_id}",
                           country="FR", lines=[{"sku": "LAMP", "quantity": 2}])


async def test_each_transition_is_emailed_once_however_often_and_in_whatever_order_its_events_come(db, sink):
    keeper, url = sink
    payloads: list[Payload] = [
        registered(), OrderPlaced(order_id="o1", country="FR", **ORDER), approved("o1"), shipped("o1"),
        OrderCancelled(order_id="o1", **ORDER),
        OrderRejected(order_id="o2", failure_reason="payment_declined", refunded_cents=0, **ORDER)]
    events = [envelope(payload) for payload in payloads]
    await deliver(db, url, *events)
    # the same events again (the inbox skips them) and events of the same transitions (the notifications' own key
    # skips them), shuffled
    again: list[Payload | Envelope[Any]] = [*events, *payloads]
    random.Random(7).shuffle(again)
    await deliver(db, url, *again)

    assert await kinds(db, "o1") == ["order_approved", "shipment_created", "order_cancelled"]
    assert await kinds(db, "o2") == ["order_rejected"]
    assert sorted(keeper.received) == sorted([
        "Your order o1 is confirmed", "Your order o1 is being shipped", "Your order o1 is cancelled",
        "Your order o2 could not be completed"])
    files = sorted(keeper.directory.glob("*.eml"))
    assert len(files) == 4 and all(f.name.endswith("@sagashop.eml") for f in files)


async def test_a_shipment_seen_before_its_order_is_approved_is_emailed_once_both_are_seen(db, sink):
    keeper, url = sink
    await deliver(db, url, registered(), shipped("o1"))
    assert (await kinds(db, "o1"), keeper.received) == ([], [])

    await deliver(db, url, approved("o1"), shipped("o1"), approved("o1"))
    assert await kinds(db, "o1") == ["order_approved", "shipment_created"]
    assert keeper.received == ["Your order o1 is confirmed", "Your order o1 is being shipped"]
    email = message_from_bytes((keeper.directory / keeper_file(keeper, "being shipped")).read_bytes(), policy=default)
    assert email["To"] == "Ada <u1@example.com>" and "Tracking number: TRK-o1" in email.get_content()


def keeper_file(keeper: CountingKeeper, subject_part: str) -> str:
    for path in keeper.directory.glob("*.eml"):
        if subject_part in message_from_bytes(path.read_bytes(), policy=default)["Subject"]:
            return path.name
    raise AssertionError(f"no email about {subject_part!r}")


async def test_the_shipment_of_a_rejected_order_cancelled_by_its_compensation_is_never_emailed(db, sink):
    keeper, url = sink
    await deliver(db, url, registered(), shipped("o1"), ShipmentCancelled(
        shipment_id="s-o1", order_id="o1", tracking_number="TRK-o1"), OrderRejected(
        order_id="o1", failure_reason="shipping_unavailable", refunded_cents=7_800, **ORDER))
    assert await kinds(db, "o1") == ["order_rejected"]
    assert keeper.received == ["Your order o1 could not be completed"]
    body = message_from_bytes((keeper.directory / keeper_file(keeper, "o1")).read_bytes(), policy=default)
    assert "our shipping service did not answer in time" in body.get_content()


async def test_an_order_of_a_customer_not_known_yet_raises_until_their_registration_arrives(db, sink):
    keeper, url = sink
    with pytest.raises(NotKnownYet):
        await deliver(db, url, approved("o1"))
    assert (await kinds(db, "o1"), keeper.received) == ([], [])

    await deliver(db, url, registered(), approved("o1"))
    assert await kinds(db, "o1") == ["order_approved"]
    assert keeper.received == ["Your order o1 is confirmed"]


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_an_approval_and_its_shipment_applied_side_by_side_still_send_the_shipments_email(db, sink):
    """Two replicas of the consumer: one applies order.approved and has not committed yet when the other applies
    shipment.created. The second waits for the first's commit and sees the approval (without the order's lock
    neither would see the other, and the shipment's email would never be sent)."""
    keeper, url = sink
    await deliver(db, url, registered(), OrderPlaced(order_id="o1", country="FR", **ORDER))
    handlers = Notifier(Mailer(url, "sagashop <orders@sagashop.local>")).handlers()
    approval, shipment = (Delivery.read(envelope(p).model_dump_json().encode(), "test", {}, seq, handlers)
                          for seq, p in ((10, approved("o1")), (11, shipped("o1"))))
    gate = threading.Event()

    def approve_then_wait(conn: Any) -> None:
        apply_all(conn, [approval], "notification")
        off_the_loop(conn, lambda: gate.wait(10))  # the transaction stays open, its lock held

    first = asyncio.create_task(db.transaction(approve_then_wait, tries=1))
    await asyncio.sleep(0.5)
    second = asyncio.create_task(db.transaction(lambda conn: apply_all(conn, [shipment], "notification"), tries=1))
    await asyncio.sleep(0.5)
    gate.set()
    await asyncio.gather(first, second)
    assert await kinds(db, "o1") == ["order_approved", "shipment_created"]
    assert sorted(keeper.received) == ["Your order o1 is being shipped", "Your order o1 is confirmed"]


async def test_a_send_that_fails_raises_and_records_nothing_and_the_event_again_sends_once(db, sink):
    keeper, url = sink
    await deliver(db, url, registered())
    down = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    for _ in range(2):
        with pytest.raises(OSError):
            await deliver(db, down, approved("o1"))
    assert await kinds(db, "o1") == []

    await deliver(db, url, approved("o1"), approved("o1"))
    assert await kinds(db, "o1") == ["order_approved"]
    assert keeper.received == ["Your order o1 is confirmed"]


class RefusingKeeper(CountingKeeper):
    """A sink that refuses every message to REFUSED (a mailbox that is full, say)."""

    REFUSED = "u2@example.com"

    async def handle_RCPT(self, server: smtp.SMTP, session: smtp.Session, envelope: smtp.Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address == self.REFUSED:
            return "552 mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_an_email_sent_before_a_later_one_of_its_batch_failed_is_not_sent_again(db, tmp_path):
    """The consumer's batch: o1's email goes out, o2's is refused, so the batch rolls back and the consumer applies
    the two again one by one (as consumer.py does): o1's is recorded then, and not sent a second time."""
    keeper = RefusingKeeper(tmp_path / "mail")
    keeper.received, keeper.sessions = [], []
    controller = Controller(keeper, hostname="127.0.0.1", port=free_port())
    controller.start()
    mailer = Mailer(f"smtp://127.0.0.1:{controller.port}", "sagashop <orders@sagashop.local>")
    try:
        await deliver(db, f"smtp://127.0.0.1:{controller.port}", registered("u1"), registered("u2"))
        handlers = Notifier(mailer).handlers()
        batch = [Delivery.read(envelope(approved(order, user)).model_dump_json().encode(), "test", {}, seq, handlers)
                 for seq, (order, user) in enumerate((("o1", "u1"), ("o2", "u2")), 10)]
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await db.transaction(lambda conn: apply_all(conn, batch, "notification"), tries=1)
        assert (await kinds(db, "o1"), keeper.received) == ([], ["Your order o1 is confirmed"])

        for one in batch:
            with contextlib.suppress(smtplib.SMTPRecipientsRefused):
                await db.transaction(lambda conn, d=one: apply_all(conn, [d], "notification"), tries=1)
    finally:
        await asyncio.to_thread(mailer.close)
        controller.stop()
    assert (await kinds(db, "o1"), await kinds(db, "o2")) == (["order_approved"], [])
    assert keeper.received == ["Your order o1 is confirmed"]


def test_emails_share_one_smtp_session_and_one_the_server_closed_is_replaced_without_losing_an_email(tmp_path):
    keeper, port = CountingKeeper(tmp_path / "mail"), free_port()
    keeper.received, keeper.sessions = [], []
    mailer = Mailer(f"smtp://127.0.0.1:{port}", "sagashop <orders@sagashop.local>")
    ada = Customer("u1", "u1@example.com", "Ada")
    emails = [domain.approved(ada, f"o{i}", LINES, 7_800, "EUR") for i in range(4)]
    try:
        for sent in (emails[:2], emails[2:]):  # the server goes away with the session open, and comes back
            controller = Controller(keeper, hostname="127.0.0.1", port=port)
            controller.start()
            try:
                for email in sent:
                    mailer.send(email)
            finally:
                controller.stop()
    finally:
        mailer.close()
    assert keeper.received == [e.subject for e in emails]
    assert keeper.sessions[0] == keeper.sessions[1] != keeper.sessions[2] == keeper.sessions[3]


async def test_the_service_lists_an_orders_notifications_oldest_first_and_refuses_no_order_id(
        settings, grpc_service, sink):
    _, url = sink
    service: Any = await grpc_service(
        "notification", notification_pb2_grpc.add_NotificationServiceServicer_to_server, NotificationServicer,
        notification_pb2_grpc.NotificationServiceStub, SERVICE)
    db = await database(settings, "notification")
    try:
        await deliver(db, url, registered(), approved("o1"), shipped("o1"))
    finally:
        await db.dispose()
    listed = await service.call(service.stub.ListNotifications, pb.ListNotificationsRequest(order_id="o1"))
    assert [(n.kind, n.to, n.order_id) for n in listed.items] == [
        ("order_approved", "u1@example.com", "o1"), ("shipment_created", "u1@example.com", "o1")]
    assert all(n.sent_at.endswith("Z") and n.id and n.subject for n in listed.items)
    with pytest.raises(Invalid):
        await service.call(service.stub.ListNotifications, pb.ListNotificationsRequest(order_id=""))
