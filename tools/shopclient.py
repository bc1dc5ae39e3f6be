"""The one client of the shop's REST API (CONTRACT.md), for everything that drives a shop from outside: the demo,
the benchmark's set-up, the chaos campaign and its audit, the canary's load, `sagashop events` and the end-to-end
tests.

An error answer raises ShopError with the problem+json the shop sent. A 429 with Retry-After is waited out as told,
here and only here; a client built with `outlast` also repeats a request while the shop is down (502, 503, 504, or
no connection), as a careful client does while an orchestrator restarts."""

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

RATE_LIMITED_WAITS = 10  # times a request waits as told (429, Retry-After) before its 429 is the answer
ORDERS_PER_CUSTOMER = 100  # what a tool places for one account of its own: well within the shop's hourly cap
DOWN = {502, 503, 504}
REBUILD_SECONDS = 330  # a rebuild may take the gateway's five minutes, and the answer a little more
ADDRESS = {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"}


class ShopError(Exception):
    """The shop answered with an error: its status and the problem+json's code and detail (empty if the body was
    not a problem, e.g. a proxy's error page)."""

    def __init__(self, method: str, path: str, reply: httpx.Response) -> None:
        super().__init__(f"{method} {path} answered {reply.status_code}: {reply.text[:300]}")
        try:
            problem = reply.json()
        except ValueError:
            problem = {}
        self.status: int = reply.status_code
        self.problem: dict[str, Any] = problem if isinstance(problem, dict) else {}
        self.code: str = self.problem.get("code", "")
        self.detail: str = self.problem.get("detail", "")


@dataclass
class Customer:
    id: str
    email: str
    password: str
    headers: dict[str, str]  # Authorization with a fresh token


def order_body(items: dict[str, int], token: str = "tok_ok", country: str = "FR") -> dict[str, Any]:
    """A POST /v1/orders body: quantities by SKU, paid with `token`, shipped to ADDRESS in `country`."""
    return {"items": [{"sku": sku, "quantity": q} for sku, q in items.items()], "payment_token": token,
            "shipping_address": {**ADDRESS, "country": country}}


class ShopClient:
    def __init__(self, url: str, *, timeout: float = 30, outlast: float = 0, connections: int = 64) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=timeout, limits=httpx.Limits(max_connections=connections))
        self.outlast = outlast  # seconds a request is repeated while the shop is down
        self.admin: dict[str, str] = {}  # the admin's Authorization, once sign_in_admin is done

    async def __aenter__(self) -> "ShopClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The shop's answer, whatever it is, once rate limits are waited out (and, with `outlast`, once the shop
        is up again or the time is over)."""
        loop = asyncio.get_running_loop()
        deadline, waits = loop.time() + self.outlast, 0
        while True:
            try:
                reply = await self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            if reply.status_code == 429 and "Retry-After" in reply.headers and waits < RATE_LIMITED_WAITS:
                waits += 1
                await asyncio.sleep(float(reply.headers["Retry-After"]))
            elif reply.status_code in DOWN and loop.time() < deadline:
                await asyncio.sleep(0.5)
            else:
                return reply

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of a successful answer; ShopError otherwise."""
        reply = await self.request(method, path, **kwargs)
        if reply.status_code >= 400:
            raise ShopError(method, path, reply)
        return reply.json()

    async def items(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """The `items` of a listing the admin reads."""
        listed: list[dict[str, Any]] = (await self.call("GET", path, headers=self.admin, **kwargs))["items"]
        return listed

    async def ready(self) -> bool:
        """Whether /readyz says every backend answers (False while the gateway does not answer)."""
        try:
            return (await self.http.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def sign_in(self, email: str, password: str) -> dict[str, str]:
        token = await self.call("POST", "/v1/auth/token", json={"email": email, "password": password})
        return {"Authorization": f"Bearer {token['access_token']}"}

    async def sign_in_admin(self, email: str, password: str) -> None:
        self.admin = await self.sign_in(email, password)

    async def sign_up(self, name: str = "Customer", password: str = "") -> Customer:
        """A new user, signed in; its email is unique, and starts with `name` (lower case, hyphens for spaces)."""
        email, password, user = await self.register(name, password)
        return Customer(user["id"], email, password, await self.sign_in(email, password))

    async def register(self, name: str = "Customer", password: str = "") -> tuple[str, str, Any]:
        """A new user (not signed in): its email, password and the user as created."""
        email = f"{'-'.join(name.lower().split())}-{uuid.uuid4().hex[:10]}@example.com"
        password = password or uuid.uuid4().hex
        return email, password, await self.call("POST", "/v1/users",
                                                json={"email": email, "password": password, "name": name})

    async def put_product(self, sku: str, available: int, price_cents: int = 2_500, name: str = "") -> Any:
        body = {"name": name or sku, "price_cents": price_cents, "currency": "EUR", "available": available}
        return await self.call("PUT", f"/v1/admin/products/{sku}", json=body, headers=self.admin)

    async def products(self) -> list[dict[str, Any]]:
        return await self.items("/v1/products")

    async def product(self, sku: str, *, admin: bool = False) -> Any:
        """The catalog's product; with `admin`, its reserved and sold units too."""
        if admin:
            return await self.call("GET", f"/v1/admin/products/{sku}", headers=self.admin)
        return await self.call("GET", f"/v1/products/{sku}")

    async def place(self, user: dict[str, str], body: dict[str, Any], *, wait: float | None = None,
                    key: str | None = None) -> httpx.Response:
        """POST /v1/orders as it is answered, for callers that count answers. `wait`: the Prefer: wait=N header;
        `key`: the Idempotency-Key."""
        headers = {**user, **({} if wait is None else {"Prefer": f"wait={wait:g}"}),
                   **({} if key is None else {"Idempotency-Key": key})}
        return await self.request("POST", "/v1/orders", json=body, headers=headers)

    async def place_order(self, user: dict[str, str], body: dict[str, Any], **options: Any) -> Any:
        """The order placed (201 or 202: see its status); ShopError if it is refused."""
        reply = await self.place(user, body, **options)
        if reply.status_code >= 400:
            raise ShopError("POST", "/v1/orders", reply)
        return reply.json()

    async def order(self, order_id: str, user: dict[str, str] | None = None) -> Any:
        return await self.call("GET", f"/v1/orders/{order_id}", headers=user or self.admin)

    async def saga(self, order_id: str, user: dict[str, str] | None = None) -> Any:
        return await self.call("GET", f"/v1/orders/{order_id}/saga", headers=user or self.admin)

    async def cancel(self, order_id: str, *, wait: float | None = None) -> Any:
        headers = {**self.admin, **({} if wait is None else {"Prefer": f"wait={wait:g}"})}
        return await self.call("POST", f"/v1/orders/{order_id}/cancel", headers=headers)

    async def ledger(self, order_id: str) -> list[dict[str, Any]]:
        """Every charge and refund the payment service holds for the order."""
        return await self.items(f"/v1/admin/orders/{order_id}/payments")

    async def net_charged(self, order_id: str) -> int:
        """What the order's charges took, less its refunds."""
        ledger = await self.ledger(order_id)
        return sum(line["amount_cents"] * (1 if line["kind"] == "charge" else -1) for line in ledger)

    async def shipments(self, order_id: str) -> list[dict[str, Any]]:
        return await self.items(f"/v1/admin/orders/{order_id}/shipments")

    async def sagas(self, state: str, limit: int = 500) -> list[dict[str, Any]]:
        return await self.items("/v1/admin/sagas", params={"state": state, "limit": limit})

    async def retry_saga(self, saga_id: str, reason: str) -> Any:
        return await self.call("POST", f"/v1/admin/sagas/{saga_id}/retry", json={"reason": reason},
                               headers=self.admin)

    async def add_fault(self, **rule: Any) -> Any:
        """The rule as the shop took it (with its id); CONTRACT.md's failure injection."""
        return await self.call("PUT", "/v1/admin/faults", json=rule, headers=self.admin)

    async def clear_faults(self) -> list[dict[str, Any]]:
        """The rules cleared, each with how many times it fired."""
        cleared: list[dict[str, Any]] = (await self.call("DELETE", "/v1/admin/faults", headers=self.admin))["items"]
        return cleared

    async def order_events(self, order_id: str, user: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The order's domain events so far, oldest first (eventually consistent: the reporting side's)."""
        found: list[dict[str, Any]] = (await self.call("GET", f"/v1/orders/{order_id}/events",
                                                       headers=user or self.admin))["items"]
        return found

    async def sales_report(self, first_day: str | None = None, last_day: str | None = None) -> Any:
        """The sales report of the UTC days [first_day, last_day] (YYYY-MM-DD; last_day: today unless given;
        first_day: last_day unless given)."""
        days = {"from": first_day, "to": last_day}
        return await self.call("GET", "/v1/admin/reports/sales", headers=self.admin,
                               params={name: day for name, day in days.items() if day})

    async def notifications(self, order_id: str) -> list[dict[str, Any]]:
        """The emails sent for the order, oldest first."""
        return await self.items("/v1/admin/notifications", params={"order_id": order_id})

    async def dead_letters(self) -> list[dict[str, Any]]:
        """The events a consumer gave up on, oldest first."""
        return await self.items("/v1/admin/events/dead-letters")

    async def rebuild(self, part: str) -> Any:
        """Rebuilds the part's read models from the event stream: `{"part", "events", "seconds"}`."""
        return await self.call("POST", f"/v1/admin/events/rebuild/{part}", headers=self.admin, timeout=REBUILD_SECONDS)
