"""Turning a checkout request into the saga's input: validated, with today's prices captured."""

import hashlib
import uuid

from sagashop.backends import Backends
from sagashop.kit.errors import Invalid
from sagashop.v1 import inventory_pb2
from sagashop.v1 import orchestrator_pb2 as pb
from sagashop.values import MAX_ID, Address, Line, PricedLine, valid_address, valid_lines

from .steps import Checkout

PRICING_WITHIN = 3.0  # seconds to get prices before the request fails as unavailable


def fingerprint(request: pb.StartCheckoutRequest) -> str:
    """What makes two requests the same order: everything but the key and the wait."""
    body = pb.StartCheckoutRequest(user_id=request.user_id, lines=request.lines,
                                   payment_token=request.payment_token, address=request.address)
    return hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()


async def checkout_of(request: pb.StartCheckoutRequest, backends: Backends) -> Checkout:
    """Validates the request and captures today's prices. A line naming a SKU the catalog does not have is refused
    at once (unknown_product), nothing stored: an order that could never be paid costs no saga and no storage."""
    if not request.user_id:
        raise Invalid("user_id is required")
    if not 1 <= len(request.payment_token) <= MAX_ID:
        raise Invalid(f"payment_token must be 1 to {MAX_ID} characters")
    lines = valid_lines([Line(x.sku, x.quantity) for x in request.lines])
    a = request.address
    address = valid_address(Address(a.name, a.line1, a.city, a.postal_code, a.country))
    inventory = backends.inventory
    products = await inventory.call(inventory.stub.ListProducts, inventory_pb2.ListProductsRequest(
        skus=[line.sku for line in lines]), within=PRICING_WITHIN)
    prices = {p.sku: (p.price_cents, p.currency) for p in products.items}
    if unknown := sorted({line.sku for line in lines} - prices.keys()):
        raise Invalid(f"no such product: {', '.join(unknown)}", code="unknown_product")
    currencies = {currency for _, currency in prices.values()}
    if len(currencies) > 1:
        raise Invalid(f"an order is paid in one currency, these lines are in {', '.join(sorted(currencies))}")
    return Checkout(
        order_id=uuid.uuid4().hex, user_id=request.user_id, currency=currencies.pop(),
        lines=tuple(PricedLine(x.sku, x.quantity, prices[x.sku][0]) for x in lines),
        payment_token=request.payment_token, address=address)
