"""Checkout load through the gateway while a canary runs, so that its analysis never waits for traffic.

Customers of its own (a new one every ORDERS_PER_CUSTOMER orders, within the shop's per-account caps) order one unit
of one product (`sku`, or the product with the most units available) every 1/rate seconds, paid `tok_ok`, shipped
to France, without waiting for the saga (`Prefer: wait=0`). Each order takes a unit for good: give the product
enough stock for rate x the run's length.
"""

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from ..shopclient import ORDERS_PER_CUSTOMER, Customer, ShopClient, ShopError, order_body
from .files import CanaryError

REQUEST_TIMEOUT = 10.0  # seconds for one call to the gateway
MAX_IN_FLIGHT = 64  # orders awaiting their answer; beyond, a tick is skipped


@dataclass
class Tally:
    answers: Counter[str] = field(default_factory=Counter)  # HTTP status, or the transport error's name
    skipped: int = 0  # ticks with MAX_IN_FLIGHT orders still unanswered
    in_flight: int = 0

    def summary(self) -> str:
        answers = ", ".join(f"{n} x {answer}" for answer, n in sorted(self.answers.items())) or "none"
        return f"load: {sum(self.answers.values())} orders placed ({answers}), {self.skipped} skipped"


async def order(shop: ShopClient, customer: Customer, sku: str, tally: Tally) -> None:
    tally.in_flight += 1
    try:
        reply = await shop.place(customer.headers, order_body({sku: 1}), wait=0, key=uuid.uuid4().hex)
        tally.answers[str(reply.status_code)] += 1
        if reply.status_code == 401:  # the token expired
            customer.headers = await shop.sign_in(customer.email, customer.password)
    except (httpx.HTTPError, ShopError) as e:
        tally.answers[type(e).__name__] += 1
    finally:
        tally.in_flight -= 1


async def fullest_product(shop: ShopClient) -> str:
    items = await shop.products()
    if not items:
        raise CanaryError("no product to order for the load: the catalog is empty")
    return str(max(items, key=lambda item: item["available"])["sku"])


async def place(shop: ShopClient, customer: Customer, sku: str, rate: float, tally: Tally) -> None:
    """One order every 1/rate seconds, until cancelled (which cancels the orders awaiting their answer too)."""
    loop = asyncio.get_running_loop()
    due, placed = loop.time(), 0
    async with asyncio.TaskGroup() as orders:
        while True:
            if tally.in_flight < MAX_IN_FLIGHT:
                if placed and placed % ORDERS_PER_CUSTOMER == 0:
                    customer = await shop.sign_up("Canary Load")
                orders.create_task(order(shop, customer, sku, tally))
                placed += 1
            else:
                tally.skipped += 1
            due += 1 / rate
            await asyncio.sleep(max(0.0, due - loop.time()))


@contextlib.asynccontextmanager
async def checkouts(url: str, rate: float, sku: str | None) -> AsyncIterator[Tally]:
    """Orders at `rate` a second through the gateway at `url` while the block runs."""
    tally = Tally()
    async with ShopClient(url, timeout=REQUEST_TIMEOUT) as shop:
        try:
            customer = await shop.sign_up("Canary Load")
            sku = sku or await fullest_product(shop)
        except ShopError as e:
            raise CanaryError(f"the load's customer cannot start: {e}") from e
        except httpx.HTTPError as e:
            raise CanaryError(f"cannot reach the gateway at {url} for the load: {e!r}") from e
        task = asyncio.create_task(place(shop, customer, sku, rate, tally))
        try:
            yield tally
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
