"""A user's-eye client of a running shop: what the tests place and what they check."""

import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ADDRESS = {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"}


class Shop:
    def __init__(self, url: str, env: dict[str, str], pid: int, log: Path) -> None:
        self.url, self.env, self.pid, self.log = url, env, pid, log
        self.http = httpx.Client(base_url=url, timeout=30)
        self.admin = self.login(env["SAGASHOP_ADMIN_EMAIL"], env["SAGASHOP_ADMIN_PASSWORD"])

    def __enter__(self) -> "Shop":
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def login(self, email: str, password: str) -> dict[str, str]:
        reply = self.http.post("/v1/auth/token", json={"email": email, "password": password})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    def customer(self) -> dict[str, str]:
        """A new registered user's auth header."""
        email = f"u{uuid.uuid4().hex[:10]}@example.com"
        reply = self.http.post("/v1/users", json={"email": email, "password": "password-1", "name": "Ada"})
        assert reply.status_code == 201, reply.text
        return self.login(email, "password-1")

    def product(self, stock: int, price_cents: int = 2_500) -> str:
        """A new product of its own, so tests never share stock."""
        sku = f"T-{uuid.uuid4().hex[:8].upper()}"
        body = {"name": f"Test {sku}", "price_cents": price_cents, "currency": "EUR", "available": stock}
        reply = self.http.put(f"/v1/admin/products/{sku}", json=body, headers=self.admin)
        assert reply.status_code == 200, reply.text
        return sku

    def order_body(self, items: dict[str, int], token: str = "tok_ok", country: str = "FR") -> dict[str, Any]:
        return {"items": [{"sku": sku, "quantity": q} for sku, q in items.items()], "payment_token": token,
                "shipping_address": {**ADDRESS, "country": country}}

    def place(self, items: dict[str, int], *, user: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.http.post("/v1/orders", json=self.order_body(items, **kwargs), headers=user or self.customer())

    def place_order(self, items: dict[str, int], **kwargs: Any) -> dict[str, Any]:
        reply = self.place(items, **kwargs)
        assert reply.status_code == 201, reply.text
        return reply.json()  # type: ignore[no-any-return]

    def available(self, sku: str) -> int:
        return int(self.http.get(f"/v1/products/{sku}").json()["available"])

    def ledger(self, order_id: str) -> list[tuple[str, int]]:
        reply = self.http.get(f"/v1/admin/orders/{order_id}/payments", headers=self.admin)
        return [(line["kind"], line["amount_cents"]) for line in reply.json()["items"]]

    def net_charged(self, order_id: str) -> int:
        return sum(amount if kind == "charge" else -amount for kind, amount in self.ledger(order_id))

    def timeline(self, order_id: str) -> list[tuple[str, str]]:
        saga = self.http.get(f"/v1/orders/{order_id}/saga", headers=self.admin).json()
        return [(step["name"], step["action"]) for step in saga["steps"]]

    def settled(self, order_id: str, within: float = 60) -> dict[str, Any]:
        """The order once it is no longer PENDING."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            order = self.http.get(f"/v1/orders/{order_id}", headers=self.admin).json()
            if order["status"] != "PENDING":
                return order  # type: ignore[no-any-return]
            time.sleep(0.2)
        raise AssertionError(f"order {order_id} still PENDING after {within}s")
