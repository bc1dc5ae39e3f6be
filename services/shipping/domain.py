"""Shipping rules: where we deliver, what a tracking number looks like, and when a repeated shipment is refused."""

import secrets
from dataclasses import dataclass

from sagashop.kit.errors import Compensated, Rejected
from sagashop.values import Address, Line

CREATED, CANCELLED, TOMBSTONE = "CREATED", "CANCELLED", "TOMBSTONE"
UNSERVED = frozenset({"AQ"})


@dataclass(frozen=True)
class Shipment:
    key: str  # the idempotency key of the CreateShipment
    order_id: str
    status: str
    tracking_number: str  # empty for a tombstone
    country: str
    lines: tuple[Line, ...]


class ShippingRejected(Rejected):
    code = "shipping_rejected"


def serviceable(address: Address) -> Address:
    if address.country in UNSERVED:
        raise ShippingRejected(f"we do not ship to {address.country}")
    return address


def new_tracking_number() -> str:
    return "SS" + secrets.token_hex(6).upper()


def replayed(s: Shipment) -> Shipment:
    """A repeated CreateShipment gets the first answer, unless the shipment was cancelled or a cancel came first."""
    if s.status != CREATED:
        raise Compensated(f"shipment {s.key} was already cancelled")
    return s
