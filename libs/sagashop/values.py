"""Value objects more than one context speaks of: order lines and addresses, with their rules."""

import re
from dataclasses import dataclass

from .kit.errors import Invalid

MAX_LINES = 50
MAX_QUANTITY = 1000
MAX_PRICE_CENTS = 100_000_000  # keeps any order total far inside int64
SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")


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
        raise Invalid(f"sku {sku[:64]!r} must be 1-64 letters, digits, '-', '_' or '.'")
    return sku


def valid_lines(lines: list[Line] | tuple[Line, ...]) -> tuple[Line, ...]:
    """1 to 50 lines of distinct SKUs, each for 1 to 1000 units."""
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
        if not value.strip() or len(value) > 200 or not value.isprintable():
            raise Invalid(f"address {field} must be 1 to 200 printable characters")
    if not COUNTRY.match(address.country):
        raise Invalid(f"country must be two capital letters, not {address.country[:8]!r}")
    return address


def valid_step_keys(idempotency_key: str, order_id: str) -> None:
    """Every saga step and undo names its idempotency key and its order."""
    if not idempotency_key or not order_id:
        raise Invalid("idempotency_key and order_id are required")
    if len(idempotency_key) > 200 or len(order_id) > 64:
        raise Invalid("idempotency_key is at most 200 characters, order_id at most 64")
    if not (idempotency_key + order_id).isprintable():
        raise Invalid("idempotency_key and order_id must be printable")
