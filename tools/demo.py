"""`sagashop demo`: a few orders against a running shop that show the happy path and each compensation path."""

import sys
import uuid
from typing import Any

import httpx

ADDRESS = {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Paris", "postal_code": "75001"}
SCENARIOS = [  # title, items, payment token, country
    ("happy path", {"LAMP": 1, "MUG": 2}, "tok_ok", "FR"),
    ("payment declined", {"LAMP": 1}, "tok_declined", "FR"),
    ("shipping rejected (AQ)", {"CHAIR": 1}, "tok_ok", "AQ"),
    ("out of stock", {"SOFA": 999}, "tok_ok", "FR"),
]


async def run(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        try:
            headers = await demo_user(http)
        except httpx.HTTPError as e:
            sys.exit(f"sagashop demo: no shop answers at {url} ({e}); start one with `sagashop up`")
        for title, items, token, country in SCENARIOS:
            body = {"items": [{"sku": s, "quantity": q} for s, q in items.items()], "payment_token": token,
                    "shipping_address": {**ADDRESS, "country": country}}
            order = (await http.post("/v1/orders", json=body, headers=headers)).json()
            saga = (await http.get(f"/v1/orders/{order['id']}/saga", headers=headers)).json()
            show(title, order, saga)


async def demo_user(http: httpx.AsyncClient) -> dict[str, str]:
    email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
    reply = await http.post("/v1/users", json={"email": email, "password": "demo-password", "name": "Demo"})
    reply.raise_for_status()
    token = await http.post("/v1/auth/token", json={"email": email, "password": "demo-password"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def show(title: str, order: dict[str, Any], saga: dict[str, Any]) -> None:
    reason = f" ({order['failure_reason']})" if order.get("failure_reason") else ""
    print(f"\n== {title}: order {order['id']} {order['status']}{reason}, "
          f"payment {order['payment']['status']} {order['payment']['amount_cents']} {order['currency']}")
    for step in saga.get("steps", []):
        mark = "<-" if step["action"] == "compensate" else "->"
        print(f"   {mark} {step['name']:<16} {step['action']:<10} {step['status']:<9} "
              f"attempts={step['attempts']} by {step['handled_by'] or '-'}")
