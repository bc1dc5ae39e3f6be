"""Inventory rules: what a valid product is, and why stock cannot be taken."""

from dataclasses import dataclass

from sagashop.kit.errors import Invalid, Rejected
from sagashop.values import CURRENCIES, MAX_PRICE_CENTS, MAX_STOCK, MAX_TEXT, MIN_PRICE_CENTS, Line, valid_sku

MAX_LISTED = 500  # SKUs one ListProducts may name (a checkout names at most MAX_LINES)


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price_cents: int
    currency: str
    available: int
    reserved: int = 0
    sold: int = 0


class OutOfStock(Rejected):
    code = "out_of_stock"


class UnknownProduct(Rejected):
    code = "unknown_product"


def valid_product(product: Product) -> Product:
    valid_sku(product.sku)
    if not product.name.strip() or len(product.name) > MAX_TEXT or not product.name.isprintable():
        raise Invalid(f"name must be 1 to {MAX_TEXT} printable characters")
    if not MIN_PRICE_CENTS <= product.price_cents <= MAX_PRICE_CENTS:
        raise Invalid(f"price_cents must be {MIN_PRICE_CENTS} to {MAX_PRICE_CENTS}")
    if product.currency not in CURRENCIES:
        raise Invalid(f"currency must be one of {', '.join(sorted(CURRENCIES))}")
    if not 0 <= product.available <= MAX_STOCK:
        raise Invalid(f"available must be 0 to {MAX_STOCK}")
    return product


def valid_skus(skus: list[str]) -> list[str]:
    """The SKUs a listing asks for: at most MAX_LISTED, each a valid one (none: every product)."""
    if len(skus) > MAX_LISTED:
        raise Invalid(f"list at most {MAX_LISTED} SKUs at once, not {len(skus)}")
    return [valid_sku(sku) for sku in skus]


def why_not_taken(line: Line, available: int | None) -> Rejected:
    """The refusal for a line whose units could not be taken: its product has `available` (None: no such
    product)."""
    if available is None:
        return UnknownProduct(f"{line.sku}: no such product")
    return OutOfStock(f"{line.sku}: {available} left, {line.quantity} asked")
