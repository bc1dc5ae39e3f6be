"""`sagashop demo`: a few orders against a running shop that show the happy path and each compensation path."""

import sys
from typing import Any

import httpx

from .shopclient import ShopClient, ShopError, order_body

SCENARIOS = [  # title, items, payment token, country
    ("happy path", {"LAMP": 1, "MUG": 2}, "tok_ok", "FR"),
    ("payment declined", {"LAMP": 1}, "tok_declined", "FR"),
    ("shipping rejected (AQ)", {"CHAIR": 1}, "tok_ok", "AQ"),
    ("out of stock", {"SOFA": 999}, "tok_ok", "FR"),
]


async def run(url: str) -> None:
    async with ShopClient(url) as shop:
        try:
            user = (await shop.sign_up("Demo")).headers
        except (httpx.HTTPError, ShopError) as e:
            sys.exit(f"sagashop demo: no shop answers at {url} ({e}); start one with `sagashop up`")
        for title, items, token, country in SCENARIOS:
            order = await shop.place_order(user, order_body(items, token, country))
            show(title, order, await shop.saga(order["id"], user))


def show(title: str, order: dict[str, Any], saga: dict[str, Any]) -> None:
    reason = f" ({order['failure_reason']})" if order.get("failure_reason") else ""
    print(f"\n== {title}: order {order['id']} {order['status']}{reason}, "
          f"payment {order['payment']['status']} {order['payment']['amount_cents']} {order['currency']}")
    for step in saga.get("steps", []):
        mark = "<-" if step["action"] == "compensate" else "->"
        print(f"   {mark} {step['name']:<16} {step['action']:<10} {step['status']:<9} "
              f"attempts={step['attempts']} by {step['handled_by'] or '-'}")
