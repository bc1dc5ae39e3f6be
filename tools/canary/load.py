"""Checkout load through the gateway while a canary runs, so that its analysis never waits for traffic.

One customer of its own orders one unit of one product (`sku`, or the product with the most units available) every
1/rate seconds, paid `tok_ok`, shipped to France, without waiting for the saga (`Prefer: wait=0`). Each order takes a
unit for good: give the product enough stock for rate x the run's length.
"""

import asyncio
import contextlib
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from .files import CanaryError

REQUEST_TIMEOUT = 10.0  # seconds for one call to the gateway
MAX_IN_FLIGHT = 64  # orders awaiting their answer; beyond, a tick is skipped
ADDRESS = {"name": "Canary Load", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"}


@dataclass
class Tally:
    answers: Counter[str] = field(default_factory=Counter)  # HTTP status, or the transport error's name
    skipped: int = 0  # ticks with MAX_IN_FLIGHT orders still unanswered
    in_flight: int = 0

    def summary(self) -> str:
        answers = ", ".join(f"{n} x {answer}" for answer, n in sorted(self.answers.items())) or "none"
        return f"load: {sum(self.answers.values())} orders placed ({answers}), {self.skipped} skipped"


class Customer:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.email, self.password = f"canary-load-{uuid.uuid4().hex[:12]}@example.com", secrets.token_urlsafe(16)
        self.headers: dict[str, str] = {}

    async def sign_up(self) -> None:
        reply = await self.http.post("/v1/users", json={"email": self.email, "password": self.password,
                                                        "name": "Canary Load"})
        if reply.status_code != 201:
            raise CanaryError(f"the load's customer cannot sign up: {reply.status_code} {reply.text[:200]}")
        await self.sign_in()

    async def sign_in(self) -> None:
        reply = await self.http.post("/v1/auth/token", json={"email": self.email, "password": self.password})
        if reply.status_code != 200:
            raise CanaryError(f"the load's customer cannot sign in: {reply.status_code} {reply.text[:200]}")
        self.headers = {"Authorization": f"Bearer {reply.json()['access_token']}"}

    async def order(self, sku: str, tally: Tally) -> None:
        body = {"items": [{"sku": sku, "quantity": 1}], "payment_token": "tok_ok", "shipping_address": ADDRESS}
        tally.in_flight += 1
        try:
            reply = await self.http.post("/v1/orders", json=body, headers={
                **self.headers, "Prefer": "wait=0", "Idempotency-Key": uuid.uuid4().hex})
            tally.answers[str(reply.status_code)] += 1
            if reply.status_code == 401:  # the token expired
                await self.sign_in()
        except (httpx.HTTPError, CanaryError) as e:
            tally.answers[type(e).__name__] += 1
        finally:
            tally.in_flight -= 1


async def fullest_product(http: httpx.AsyncClient) -> str:
    reply = await http.get("/v1/products")
    items = reply.json().get("items", []) if reply.status_code == 200 else []
    if not items:
        raise CanaryError(f"no product to order for the load: {reply.status_code} {reply.text[:200]}")
    return str(max(items, key=lambda item: item["available"])["sku"])


async def place(customer: Customer, sku: str, rate: float, tally: Tally) -> None:
    """One order every 1/rate seconds, until cancelled (which cancels the orders awaiting their answer too)."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    async with asyncio.TaskGroup() as orders:
        while True:
            if tally.in_flight < MAX_IN_FLIGHT:
                orders.create_task(customer.order(sku, tally))
            else:
                tally.skipped += 1
            due += 1 / rate
            await asyncio.sleep(max(0.0, due - loop.time()))


@contextlib.asynccontextmanager
async def checkouts(url: str, rate: float, sku: str | None) -> AsyncIterator[Tally]:
    """Orders at `rate` a second through the gateway at `url` while the block runs."""
    tally = Tally()
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as http:
        customer = Customer(http)
        try:
            await customer.sign_up()
            sku = sku or await fullest_product(http)
        except httpx.HTTPError as e:
            raise CanaryError(f"cannot reach the gateway at {url} for the load: {e!r}") from e
        task = asyncio.create_task(place(customer, sku, rate, tally))
        try:
            yield tally
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
