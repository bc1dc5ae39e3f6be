"""What the shop tells a customer, and when: one email per order transition, its text built from the event alone.
Plain Python, no I/O."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sagashop.events.catalog import PricedItem
from sagashop.kit.errors import Invalid
from sagashop.values import MAX_ID

ORDER_APPROVED, ORDER_REJECTED, ORDER_CANCELLED, SHIPMENT_CREATED = (
    "order_approved", "order_rejected", "order_cancelled", "shipment_created")
IDS = uuid.UUID("6f0d7f1e-5b7a-4d0e-9a57-0c3d3f6a9b21")  # the namespace of notification ids
REASONS = {  # a rejected order's failure_reason, in the words of the email
    "out_of_stock": "some of the items you ordered are out of stock",
    "unknown_product": "an item you ordered is no longer in our catalog",
    "payment_declined": "your payment was declined",
    "shipping_rejected": "we cannot ship to the address you gave",
}
UNAVAILABLE = "_unavailable"  # `<service>_unavailable`: that service stayed down past the checkout's deadline


class NotKnownYet(Exception):
    """The customer or order an event names has not arrived yet (its event is on another service's relay, at most a
    round behind): raised so the event is delivered again later."""


@dataclass(frozen=True)
class Customer:
    user_id: str
    email: str
    name: str


@dataclass(frozen=True)
class Email:
    """One notification: `id` is the same for the same (order, kind), so a resent email has the same Message-ID."""

    id: str
    order_id: str
    kind: str
    to: Customer
    subject: str
    body: str


@dataclass(frozen=True)
class Sent:
    """A notification as ListNotifications tells it."""

    id: str
    order_id: str
    kind: str
    to: str
    subject: str
    sent_at: datetime


def notification_id(order_id: str, kind: str) -> str:
    return uuid.uuid5(IDS, f"{order_id}/{kind}").hex


def valid_order_id(order_id: str) -> str:
    if not 1 <= len(order_id) <= MAX_ID or not order_id.isprintable():
        raise Invalid(f"order_id must be 1 to {MAX_ID} printable characters")
    return order_id


def money(cents: int, currency: str) -> str:
    return f"{cents // 100}.{cents % 100:02d} {currency}"


def reason(failure_reason: str) -> str:
    """Why a checkout failed, as a sentence's clause; a reason added after this version still reads well."""
    if failure_reason in REASONS:
        return REASONS[failure_reason]
    if failure_reason.endswith(UNAVAILABLE) and (service := failure_reason.removesuffix(UNAVAILABLE)):
        return f"our {service.replace('_', ' ')} service did not answer in time"
    return "it could not be completed"


def _items(lines: Sequence[PricedItem], currency: str) -> str:
    return "\n".join(f"  {line.quantity} x {line.sku}  {money(line.unit_price_cents * line.quantity, currency)}"
                     for line in lines)


def _email(order_id: str, kind: str, to: Customer, subject: str, *paragraphs: str) -> Email:
    body = "\n\n".join((f"Hello {to.name},", *paragraphs, "Thank you for shopping with sagashop.")) + "\n"
    return Email(notification_id(order_id, kind), order_id, kind, to, subject, body)


def approved(to: Customer, order_id: str, lines: Sequence[PricedItem], total_cents: int, currency: str) -> Email:
    return _email(order_id, ORDER_APPROVED, to, f"Your order {order_id} is confirmed",
                  f"your order {order_id} is confirmed and paid:",
                  f"{_items(lines, currency)}\n  Total: {money(total_cents, currency)}",
                  "We will write again when its shipment is created.")


def rejected(to: Customer, order_id: str, failure_reason: str, refunded_cents: int, currency: str) -> Email:
    paid = (f"The {money(refunded_cents, currency)} we charged has been refunded." if refunded_cents
            else "Nothing was charged.")
    return _email(order_id, ORDER_REJECTED, to, f"Your order {order_id} could not be completed",
                  f"we could not complete your order {order_id}: {reason(failure_reason)}.", paid)


def cancelled(to: Customer, order_id: str, lines: Sequence[PricedItem], total_cents: int, currency: str) -> Email:
    return _email(order_id, ORDER_CANCELLED, to, f"Your order {order_id} is cancelled",
                  f"your order {order_id} is cancelled:",
                  f"{_items(lines, currency)}\n  Refunded: {money(total_cents, currency)}",
                  "Its shipment is cancelled and the full amount goes back to your card.")


def shipment_created(to: Customer, order_id: str, tracking_number: str) -> Email:
    return _email(order_id, SHIPMENT_CREATED, to, f"Your order {order_id} is being shipped",
                  f"a shipment was created for your order {order_id}.", f"Tracking number: {tracking_number}")
