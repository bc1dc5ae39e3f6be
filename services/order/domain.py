"""The Order aggregate: lines priced once at creation, and the moves the checkout saga makes on it.

PENDING -> APPROVED | REJECTED, APPROVED -> CANCELLED. Repeating the move that already happened returns the order
as it is; any other move is refused and changes nothing.
"""

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime

from sagashop.kit.errors import Invalid, Rejected
from sagashop.values import (
    APPROVED,
    CANCELLED,
    CHARGED,
    MAX_ID,
    MAX_PRICE_CENTS,
    NONE,
    PENDING,
    REFUNDED,
    REJECTED,
    Address,
    Line,
    PricedLine,
    valid_address,
    valid_currency,
    valid_lines,
)


class InvalidTransition(Rejected):
    code = "invalid_transition"


@dataclass(frozen=True)
class Order:
    id: str
    user_id: str
    items: tuple[PricedLine, ...]
    currency: str
    address: Address
    created_at: datetime
    updated_at: datetime
    status: str = PENDING
    failure_reason: str = ""
    payment_status: str = NONE
    payment_amount_cents: int = 0
    tracking_number: str = ""

    @classmethod
    def create(cls, id: str, user_id: str, items: list[PricedLine], currency: str, address: Address,
               *, at: datetime) -> "Order":
        """A PENDING order, or Invalid saying which rule the request breaks."""
        valid_id("id", id)
        valid_id("user_id", user_id)
        return cls(id, user_id, _valid_items(items), valid_currency(currency), valid_address(address), at, at)

    @property
    def total_cents(self) -> int:
        return sum(line.quantity * line.unit_price_cents for line in self.items)

    def approve(self, tracking_number: str, charged_cents: int) -> "Order":
        if not tracking_number or charged_cents < 0:
            raise Invalid("approving needs a tracking number and a charged amount of at least 0")
        if self._already(APPROVED, allowed_from=PENDING):
            return self
        return replace(self, status=APPROVED, payment_status=CHARGED, payment_amount_cents=charged_cents,
                       tracking_number=tracking_number)

    def reject(self, reason: str, refunded: bool, refunded_cents: int) -> "Order":
        if not reason or refunded_cents < 0:
            raise Invalid("rejecting needs a failure reason and a refunded amount of at least 0")
        if self._already(REJECTED, allowed_from=PENDING):
            return self
        return replace(self, status=REJECTED, failure_reason=reason, payment_status=REFUNDED if refunded else NONE,
                       payment_amount_cents=refunded_cents if refunded else 0)

    def cancel(self) -> "Order":
        if self._already(CANCELLED, allowed_from=APPROVED):
            return self
        return replace(self, status=CANCELLED, payment_status=REFUNDED, tracking_number="")

    def _already(self, target: str, *, allowed_from: str) -> bool:
        """True if the order already is in `target`; refuses the move unless it stands in `allowed_from`."""
        if self.status == target:
            return True
        if self.status != allowed_from:
            raise InvalidTransition(f"order {self.id} is {self.status}; it cannot become {target}")
        return False


def valid_id(field: str, value: str) -> str:
    if not 1 <= len(value) <= MAX_ID or not value.isprintable():
        raise Invalid(f"{field} must be 1 to {MAX_ID} printable characters")
    return value


def _valid_items(items: list[PricedLine]) -> tuple[PricedLine, ...]:
    valid_lines([Line(line.sku, line.quantity) for line in items])
    for line in items:
        if not 0 <= line.unit_price_cents <= MAX_PRICE_CENTS:
            raise Invalid(f"{line.sku}: unit_price_cents must be 0 to {MAX_PRICE_CENTS}")
    return tuple(items)



def cursor_after(order: Order) -> str:
    """Where a page of a user's orders (newest first) goes on after `order`: opaque to the client."""
    return base64.urlsafe_b64encode(f"{order.created_at.isoformat()}|{order.id}".encode()).decode().rstrip("=")


def position_of(cursor: str) -> tuple[datetime, str] | None:
    """The (created_at, id) a cursor stands for; None for the first page."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, order_id = text.partition("|")
        return datetime.fromisoformat(at), valid_id("cursor", order_id)
    except (ValueError, binascii.Error) as e:  # UnicodeDecodeError and Invalid are ValueErrors
        raise Invalid("cursor is not one a page of orders gave") from e
