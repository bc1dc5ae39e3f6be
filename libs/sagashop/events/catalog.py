"""Every event a context publishes, one payload model per event type and version.

Each context publishes what happened to its own aggregates, after its own transaction; never a command. A payload
carries the state a consumer needs (event-carried state), so it need not call back. Within a version a payload only
grows: a field is added (with a default, for a consumer's older producer), never removed, renamed or retyped; a
breaking change is a new version beside the old one.
"""

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class Payload(BaseModel):
    """The payload of one event type and version; `event_type` is `<aggregate>.<what happened>`."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    event_type: ClassVar[str]
    event_version: ClassVar[int] = 1


class Item(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    sku: str
    quantity: int = Field(ge=1)


class PricedItem(Item):
    unit_price_cents: int = Field(ge=0)


class UserRegistered(Payload):
    """An account was made (a sign-up, or the admin account a user service ensures)."""

    event_type = "user.registered"
    user_id: str
    email: str
    name: str


class OrderPlaced(Payload):
    """An order was created PENDING; its checkout saga runs next."""

    event_type = "order.placed"
    order_id: str
    user_id: str
    lines: list[PricedItem]
    total_cents: int
    currency: str
    country: str


class OrderApproved(Payload):
    """The checkout succeeded: stock sold, payment charged, shipment created."""

    event_type = "order.approved"
    order_id: str
    user_id: str
    lines: list[PricedItem]
    total_cents: int
    currency: str
    charged_cents: int
    tracking_number: str


class OrderRejected(Payload):
    """The checkout failed and was compensated; `failure_reason` is the error code that stopped it."""

    event_type = "order.rejected"
    order_id: str
    user_id: str
    lines: list[PricedItem]
    total_cents: int
    currency: str
    failure_reason: str
    refunded_cents: int


class OrderCancelled(Payload):
    """An approved order was cancelled: its shipment cancelled, its stock back, its payment refunded."""

    event_type = "order.cancelled"
    order_id: str
    user_id: str
    lines: list[PricedItem]
    total_cents: int
    currency: str


class ProductChanged(Payload):
    """A product was added or its name, price or stock changed by an operator."""

    event_type = "product.changed"
    sku: str
    name: str
    price_cents: int
    currency: str
    available: int
    reserved: int
    sold: int


class StockReserved(Payload):
    """A reservation took units from available (for a checkout under way)."""

    event_type = "stock.reserved"
    reservation_id: str = Field(description="the idempotency key of the reserving step")
    order_id: str
    lines: list[Item]


class StockReleased(Payload):
    """A reservation's units went back to available: its saga released them, or it was held too long."""

    event_type = "stock.released"
    reservation_id: str
    order_id: str
    lines: list[Item]
    reason: Literal["released", "expired"]


class StockCommitted(Payload):
    """A reservation's units were sold."""

    event_type = "stock.committed"
    reservation_id: str
    order_id: str
    lines: list[Item]


class PaymentCharged(Payload):
    """An order's payment was charged."""

    event_type = "payment.charged"
    payment_id: str = Field(description="the idempotency key of the charging step")
    order_id: str
    amount_cents: int
    currency: str


class PaymentRefunded(Payload):
    """A charge was refunded in full."""

    event_type = "payment.refunded"
    payment_id: str
    order_id: str
    amount_cents: int
    currency: str


class ShipmentCreated(Payload):
    """A shipment was created for an order."""

    event_type = "shipment.created"
    shipment_id: str = Field(description="the idempotency key of the shipping step")
    order_id: str
    tracking_number: str
    country: str
    lines: list[Item]


class ShipmentCancelled(Payload):
    """A shipment was cancelled before it left."""

    event_type = "shipment.cancelled"
    shipment_id: str
    order_id: str
    tracking_number: str


EVENTS: tuple[type[Payload], ...] = (
    UserRegistered, OrderPlaced, OrderApproved, OrderRejected, OrderCancelled, ProductChanged, StockReserved,
    StockReleased, StockCommitted, PaymentCharged, PaymentRefunded, ShipmentCreated, ShipmentCancelled)
