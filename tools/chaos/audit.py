"""The invariants a campaign must leave intact, checked from what each service holds."""

from collections import Counter
from typing import Any

from .client import ShopClient


async def violations(shop: ShopClient, orders: dict[str, dict[str, Any]], stock: dict[str, int]) -> list[str]:
    """Per SKU: available + reserved + sold = total, nothing left reserved, sold = what approved orders took.
    Per order: net charge = total if APPROVED else 0; one live shipment if APPROVED else none."""
    found: list[str] = []
    sold: Counter[str] = Counter()
    for order_id, order in orders.items():
        ledger = (await shop.admin_get(f"/v1/admin/orders/{order_id}/payments"))["items"]
        net = sum(x["amount_cents"] if x["kind"] == "charge" else -x["amount_cents"] for x in ledger)
        shipments = (await shop.admin_get(f"/v1/admin/orders/{order_id}/shipments"))["items"]
        approved = order["status"] == "APPROVED"
        if net != (order["total_cents"] if approved else 0):
            found.append(f"order {order_id} {order['status']}: net charge {net}, total {order['total_cents']}")
        if len(shipments) != (1 if approved else 0):
            found.append(f"order {order_id} {order['status']}: {len(shipments)} live shipments")
        if approved:
            sold.update({line["sku"]: line["quantity"] for line in order["items"]})
    for sku, total in stock.items():
        p = await shop.admin_get(f"/v1/admin/products/{sku}")
        if (p["available"] + p["reserved"] + p["sold"], p["reserved"], p["sold"]) != (total, 0, sold[sku]):
            found.append(f"{sku}: available {p['available']} reserved {p['reserved']} sold {p['sold']}, "
                         f"expected total {total}, 0 reserved, {sold[sku]} sold")
    return found
