"""The invariants a campaign must leave intact, checked from what each service holds."""

from collections import Counter
from typing import Any

from ..shopclient import ShopClient


async def violations(shop: ShopClient, orders: dict[str, dict[str, Any]], stock: dict[str, int]) -> list[str]:
    """Per SKU: available + reserved + sold = total, nothing left reserved, sold = what approved orders took.
    Per order: net charge = total if APPROVED else 0; one live shipment if APPROVED else none."""
    found: list[str] = []
    sold: Counter[str] = Counter()
    for order_id, order in orders.items():
        net = await shop.net_charged(order_id)
        shipments = await shop.shipments(order_id)
        approved = order["status"] == "APPROVED"
        if net != (order["total_cents"] if approved else 0):
            found.append(f"order {order_id} {order['status']}: net charge {net}, total {order['total_cents']}")
        if len(shipments) != (1 if approved else 0):
            found.append(f"order {order_id} {order['status']}: {len(shipments)} live shipments")
        if approved:
            sold.update({line["sku"]: line["quantity"] for line in order["items"]})
    for sku, total in stock.items():
        p = await shop.product(sku, admin=True)
        if (p["available"] + p["reserved"] + p["sold"], p["reserved"], p["sold"]) != (total, 0, sold[sku]):
            found.append(f"{sku}: available {p['available']} reserved {p['reserved']} sold {p['sold']}, "
                         f"expected total {total}, 0 reserved, {sold[sku]} sold")
    return found
