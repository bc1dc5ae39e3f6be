"""The JSON the gateway takes and gives, as the public contract describes it. Requests are strict: unknown
fields and wrong types are refused with 422. Their limits are the shop's own (sagashop.values), and a saga's
states the engine's (sagashop.saga)."""

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sagashop.kit.faults import MAX_COUNT, MAX_DELAY_MS, CrashPoint
from sagashop.kit.settings import Service
from sagashop.saga import SagaState
from sagashop.values import (
    COUNTRY_PATTERN,
    MAX_EMAIL,
    MAX_ID,
    MAX_LINES,
    MAX_NOTE,
    MAX_PASSWORD,
    MAX_PRICE_CENTS,
    MAX_QUANTITY,
    MAX_STOCK,
    MAX_TEXT,
    MIN_PASSWORD,
    MIN_PRICE_CENTS,
    SKU_PATTERN,
    Currency,
    OrderStatus,
    PaymentStatus,
)

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no control characters (a NUL cannot even be stored in PostgreSQL)
ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT, pattern=PRINTABLE)]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=SKU_PATTERN)]
SkuPath = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=SKU_PATTERN)]
IdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID)]  # an order's or a saga's id
OperatorVerb = Literal["retry", "compensate", "abort"]  # what an operator may do with a parked saga


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewUser(Request):
    email: str = Field(max_length=MAX_EMAIL, pattern=PRINTABLE)  # the user service checks and normalizes it
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    name: Text


class Credentials(Request):
    email: str = Field(max_length=MAX_EMAIL, pattern=PRINTABLE)
    password: str = Field(max_length=MAX_PASSWORD)


class ProductIn(Request):
    name: Text
    price_cents: int = Field(ge=MIN_PRICE_CENTS, le=MAX_PRICE_CENTS)
    currency: Currency
    available: int = Field(ge=0, le=MAX_STOCK)


class LineIn(Request):
    sku: Sku
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class AddressIn(Request):
    name: Text
    line1: Text
    city: Text
    postal_code: Text
    country: Annotated[str, StringConstraints(pattern=COUNTRY_PATTERN)]


class OrderIn(Request):
    items: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    payment_token: str = Field(min_length=1, max_length=MAX_ID, pattern=PRINTABLE)
    shipping_address: AddressIn


class UserOut(BaseModel):
    id: str
    email: str
    name: str


class Me(UserOut):
    roles: list[str]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class Product(BaseModel):
    sku: str
    name: str
    price_cents: int
    currency: str
    available: int


class ProductList(BaseModel):
    items: list[Product]


class Stock(Product):
    """A product with where its units are: available + reserved + sold is all the shop ever had of it."""

    reserved: int
    sold: int


class Shipment(BaseModel):
    tracking_number: str
    status: str


class ShipmentList(BaseModel):
    items: list[Shipment]


class OrderLine(BaseModel):
    sku: str
    quantity: int
    unit_price_cents: int


class PaymentOut(BaseModel):
    status: PaymentStatus
    amount_cents: int


class ShipmentOut(BaseModel):
    tracking_number: str


class Order(BaseModel):
    id: str
    status: OrderStatus
    failure_reason: str | None
    items: list[OrderLine]
    total_cents: int
    currency: str
    payment: PaymentOut
    shipment: ShipmentOut | None
    created_at: str
    updated_at: str


class OrderList(BaseModel):
    items: list[Order]
    next_cursor: str | None  # the `cursor` of the next page; null on the last


class SagaStep(BaseModel):
    name: str
    action: Literal["execute", "compensate"]
    status: str
    attempts: int
    handled_by: str
    error: str | None
    started_at: str
    finished_at: str | None


class AuditEntry(BaseModel):
    action: str
    reason: str
    actor: str
    at: str


class Saga(BaseModel):
    saga_id: str
    name: str
    order_id: str
    route: str  # v2 if any part it calls is pinned to its canary, else v1
    versions: dict[str, Literal["v1", "v2"]]  # each part it calls (order, ...) -> the version it is pinned to
    state: SagaState
    failure_reason: str | None
    steps: list[SagaStep]
    audit: list[AuditEntry]
    created_at: str
    updated_at: str


class SagaList(BaseModel):
    items: list[Saga]


class OperatorAction(Request):
    reason: str = Field(default="", max_length=MAX_NOTE, pattern=PRINTABLE)


class FaultIn(Request):
    service: Service
    method: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    error: str | None = Field(default=None, max_length=32, pattern=PRINTABLE)
    rate: float = Field(default=1.0, ge=0, le=1)
    count: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    delay_ms: int = Field(default=0, ge=0, le=MAX_DELAY_MS)
    after_commit: bool = False
    crash: CrashPoint | None = None


class Fault(BaseModel):
    service: str
    id: str
    method: str
    error: str | None
    rate: float
    count: int | None
    delay_ms: int
    after_commit: bool
    crash: str | None
    fired: int


class FaultList(BaseModel):
    items: list[Fault]


class LedgerLine(BaseModel):
    kind: Literal["charge", "refund"]
    amount_cents: int
    created_at: str


class Ledger(BaseModel):
    items: list[LedgerLine]


class Breaker(BaseModel):
    part: str  # whose breaker: gateway | orchestrator
    name: str  # the service it guards calls to
    state: Literal["closed", "open", "half-open"]
    failures: int


class BreakerList(BaseModel):
    items: list[Breaker]


class OrderEvent(BaseModel):
    event_id: str
    event_type: str
    occurred_at: str
    payload: dict[str, Any]  # as its producer wrote it (docs/asyncapi.json)


class OrderEventList(BaseModel):
    items: list[OrderEvent]


class SkuSales(BaseModel):
    sku: str
    currency: str
    units: int
    revenue_cents: int


class Outcomes(BaseModel):
    approved: int
    cancelled: int
    rejected: dict[str, int]  # failure_reason -> orders


class SalesReport(BaseModel):
    """Per SKU and currency, orders approved in the range less those cancelled in it. `compensations` (an addition
    to the contract): stock_released, payment_refunded, shipment_cancelled -> how many in the range."""

    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    as_of: str | None  # when the last event applied happened; null before any
    items: list[SkuSales]
    orders: Outcomes
    compensations: dict[str, int]


class Notification(BaseModel):
    id: str
    order_id: str
    to: str
    kind: str  # order_approved | order_rejected | order_cancelled | shipment_created
    subject: str
    sent_at: str


class NotificationList(BaseModel):
    items: list[Notification]


class DeadLetter(BaseModel):
    id: str  # its sequence in the dead-letter stream
    consumer: str
    event_id: str
    event_type: str
    error: str
    deliveries: int
    failed_at: str


class DeadLetterList(BaseModel):
    items: list[DeadLetter]


class Replayed(BaseModel):
    id: str  # the dead letter, now on its way to its consumer again


class Rebuilt(BaseModel):
    part: str
    events: int  # events read from the stream and applied
    seconds: float
