"""Payment rules: what a chargeable amount is, which test tokens pay, and when a repeated charge is refused."""

from dataclasses import dataclass
from datetime import datetime

from sagashop.kit.errors import Compensated, Invalid, Rejected
from sagashop.values import MAX_LINES, MAX_PRICE_CENTS, MAX_QUANTITY, valid_currency

CHARGED, REFUNDED, TOMBSTONE = "CHARGED", "REFUNDED", "TOMBSTONE"
CHARGE, REFUND = "charge", "refund"
TOKEN_OK, TOKEN_DECLINED = "tok_ok", "tok_declined"
MAX_AMOUNT_CENTS = MAX_LINES * MAX_QUANTITY * MAX_PRICE_CENTS  # the largest order total there can be


@dataclass(frozen=True)
class Payment:
    key: str  # the idempotency key of the Charge
    order_id: str
    status: str
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class LedgerLine:
    kind: str
    amount_cents: int
    currency: str
    created_at: datetime


class PaymentDeclined(Rejected):
    code = "payment_declined"


def valid_amount(amount_cents: int, currency: str) -> None:
    if not 0 < amount_cents <= MAX_AMOUNT_CENTS:
        raise Invalid(f"amount_cents must be 1 to {MAX_AMOUNT_CENTS}, not {amount_cents}")
    valid_currency(currency)


def authorize(token: str) -> None:
    """The test gateway: tok_ok pays, every other token is declined."""
    if token == TOKEN_DECLINED:
        raise PaymentDeclined("the card was declined")
    if token != TOKEN_OK:
        raise PaymentDeclined("unknown payment token")


def replayed(p: Payment) -> Payment:
    """A repeated Charge gets the first answer, unless the charge was refunded or a refund came first."""
    if p.status != CHARGED:
        raise Compensated(f"payment {p.key} was already compensated by a refund")
    return p
