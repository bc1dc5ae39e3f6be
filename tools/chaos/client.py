"""The campaign's view of the shop: the public REST API and its admin endpoints, nothing else."""

import asyncio
import uuid
from typing import Any

import httpx

ADDRESS = {"name": "Chaos", "line1": "1 Main St", "city": "Paris", "postal_code": "75001"}
RETRYABLE = {429, 502, 503, 504}


class ShopClient:
    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64))
        self.admin: dict[str, str] = {}

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, repeated while the shop answers it is busy or down (an orchestrator restarting)."""
        for _ in range(120):
            try:
                reply = await self.http.request(method, path, **kwargs)
                if reply.status_code not in RETRYABLE:
                    return reply
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
        raise RuntimeError(f"{method} {path}: no answer for a minute")

    async def login(self, email: str, password: str) -> dict[str, str]:
        reply = await self.call("POST", "/v1/auth/token", json={"email": email, "password": password})
        reply.raise_for_status()
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    async def customer(self) -> dict[str, str]:
        email, password = f"chaos-{uuid.uuid4().hex[:10]}@example.com", "chaos-password"
        (await self.call("POST", "/v1/users", json={"email": email, "password": password, "name": "Chaos"}))
        return await self.login(email, password)

    async def put_product(self, sku: str, stock: int, price_cents: int) -> None:
        body = {"name": f"Chaos {sku}", "price_cents": price_cents, "currency": "EUR", "available": stock}
        (await self.call("PUT", f"/v1/admin/products/{sku}", json=body, headers=self.admin)).raise_for_status()

    async def place(self, user: dict[str, str], lines: dict[str, int], token: str, country: str) -> str:
        body = {"items": [{"sku": s, "quantity": q} for s, q in lines.items()], "payment_token": token,
                "shipping_address": {**ADDRESS, "country": country}}
        headers = {**user, "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=0"}
        reply = await self.call("POST", "/v1/orders", json=body, headers=headers)
        reply.raise_for_status()
        return str(reply.json()["id"])

    async def admin_get(self, path: str, **params: Any) -> Any:
        reply = await self.call("GET", path, headers=self.admin, params=params)
        reply.raise_for_status()
        return reply.json()

    async def cancel(self, order_id: str) -> None:
        await self.call("POST", f"/v1/orders/{order_id}/cancel", headers={**self.admin, "Prefer": "wait=0"})

    async def faults(self, method: str, rule: dict[str, Any] | None = None) -> Any:
        reply = await self.call(method, "/v1/admin/faults", json=rule, headers=self.admin)
        reply.raise_for_status()
        return reply.json()
