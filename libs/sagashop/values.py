"""Value objects more than one context speaks of (order lines, addresses), their rules, and the limits of what
the shop accepts: the gateway's schemas refuse a request past them with 422 before any service is called, and the
services check the same limits again for whoever calls them over gRPC."""

import re
from dataclasses import dataclass
from typing import Literal, get_args

from .kit.errors import Invalid

MAX_LINES = 50  # lines of one order
MAX_QUANTITY = 1000  # units of one line
MIN_PRICE_CENTS = 1  # a unit price: nothing is given away, every approved order is paid for
MAX_PRICE_CENTS = 100_000_000  # a unit price; keeps any order total far inside int64
MAX_STOCK = 1_000_000_000  # units of one product on hand
MAX_ID = 64  # an order's, user's or saga's id, a SKU, a payment token
MAX_TEXT = 200  # a name, an address field
MAX_KEY = 200  # an idempotency key
MAX_NOTE = 500  # an operator's reason
MIN_PASSWORD, MAX_PASSWORD = 8, 256
MAX_EMAIL = 320
MAX_SAGAS_LISTED = 500  # sagas one listing may return
MAX_ORDERS_LISTED = 100  # orders one page of a customer's orders holds
MAX_WATCHES = 5  # saga event streams one user may hold open at once at one gateway
Currency = Literal["EUR", "USD", "GBP"]
CURRENCIES = frozenset(get_args(Currency))
# an order moves PENDING -> APPROVED | REJECTED, and APPROVED -> CANCELLED
OrderStatus = Literal["PENDING", "APPROVED", "REJECTED", "CANCELLED"]
PENDING, APPROVED, REJECTED, CANCELLED = get_args(OrderStatus)
PaymentStatus = Literal["NONE", "CHARGED", "REFUNDED"]  # of an order's payment, as the order knows it
NONE, CHARGED, REFUNDED = get_args(PaymentStatus)
SKU_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_ID - 1}}}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
SKU, COUNTRY, CURRENCY = re.compile(SKU_PATTERN), re.compile(COUNTRY_PATTERN), re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True)
class PricedLine:
    """A line with the unit price captured when the order was placed."""

    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str


def valid_sku(sku: str) -> str:
    if not SKU.match(sku):
        raise Invalid(f"sku {sku[:MAX_ID]!r} must be 1-{MAX_ID} letters, digits, '-', '_' or '.'")
    return sku


def valid_lines(lines: list[Line] | tuple[Line, ...]) -> tuple[Line, ...]:
    """1 to MAX_LINES lines of distinct SKUs, each for 1 to MAX_QUANTITY units."""
    if not 1 <= len(lines) <= MAX_LINES:
        raise Invalid(f"an order has 1 to {MAX_LINES} lines, not {len(lines)}")
    seen: set[str] = set()
    for line in lines:
        valid_sku(line.sku)
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise Invalid(f"{line.sku}: quantity must be 1 to {MAX_QUANTITY}, not {line.quantity}")
        if line.sku in seen:
            raise Invalid(f"{line.sku} appears on two lines")
        seen.add(line.sku)
    return tuple(lines)


def valid_address(address: Address) -> Address:
    for field in ("name", "line1", "city", "postal_code"):
        value = getattr(address, field)
        if not value.strip() or len(value) > MAX_TEXT or not value.isprintable():
            raise Invalid(f"address {field} must be 1 to {MAX_TEXT} printable characters")
    if not COUNTRY.match(address.country):
        raise Invalid(f"country must be two capital letters, not {address.country[:8]!r}")
    return address


def valid_step_keys(idempotency_key: str, order_id: str) -> None:
    """Every saga step and undo names its idempotency key and its order."""
    if not idempotency_key or not order_id:
        raise Invalid("idempotency_key and order_id are required")
    if len(idempotency_key) > MAX_KEY or len(order_id) > MAX_ID:
        raise Invalid(f"idempotency_key is at most {MAX_KEY} characters, order_id at most {MAX_ID}")
    if not (idempotency_key + order_id).isprintable():
        raise Invalid("idempotency_key and order_id must be printable")


def valid_currency(currency: str) -> str:
    """An ISO 4217 code as an order or a payment carries it (a product is priced in one of CURRENCIES)."""
    if not CURRENCY.match(currency):
        raise Invalid(f"currency must be three capital letters, not {currency!r}")
    return currency
