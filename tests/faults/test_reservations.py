"""A saga held up for longer than the reservation TTL: the sweeper gives its units back, and its stock is still
never sold twice. An inventory replica beside the shop sweeps with a TTL of a fraction of a second, so a checkout
slowed down in its payment outlives its reservation."""

import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from tests.shop import Shop

TTL = {"SAGASHOP_RESERVATION_TTL_SECONDS": "0.3", "SAGASHOP_SWEEP_INTERVAL_SECONDS": "0.05"}
SLOW_CHARGE = {"service": "payment", "method": "Charge", "delay_ms": 1_900, "count": 1}  # within a call's deadline


@pytest.fixture
def sweeping(faulty: Shop, tmp_path) -> Iterator[Shop]:
    with (tmp_path / "sweeper.log").open("wb") as log:
        sweeper, _ = faulty.spawn("inventory", log, **TTL)
        try:
            yield faulty
        finally:
            sweeper.send_signal(signal.SIGTERM)
            try:
                sweeper.wait(30)
            except subprocess.TimeoutExpired:
                sweeper.kill()


def wait_until(check: Callable[[], bool], what: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {within}s")
        time.sleep(0.02)


def start_slowed_down(shop: Shop, sku: str, quantity: int) -> str:
    """Places an order whose Charge takes 1.9 s; returns its id once the sweeper released its reservation."""
    shop.add_fault(**SLOW_CHARGE)
    placed = shop.http.post("/v1/orders", json=shop.order_body({sku: quantity}),
                            headers={**shop.customer(), "Prefer": "wait=0"})
    assert placed.status_code == 202, placed.text
    order_id = str(placed.json()["id"])

    def released_while_charging() -> bool:
        saga = shop.saga(order_id)
        charging = saga["state"] == "RUNNING" and [s["name"] for s in saga["steps"]][-1] == "charge_payment"
        return charging and shop.stock(sku) == (10, 0, 0)

    wait_until(released_while_charging, "released while its saga waits for the payment")
    return order_id


def test_units_released_under_a_live_saga_and_sold_to_another_are_never_sold_twice(sweeping):
    shop, sku = sweeping, sweeping.product(stock=10)
    held_up = start_slowed_down(shop, sku, 10)

    later = shop.place_order({sku: 10})  # another customer buys the units back on sale
    first = shop.settled(held_up)

    assert (later["status"], first["status"], first["failure_reason"]) == ("APPROVED", "REJECTED", "out_of_stock")
    assert first["payment"] == {"status": "REFUNDED", "amount_cents": 25_000}
    assert shop.ledger(held_up) == [("charge", 25_000), ("refund", 25_000)]
    commit = next(s for s in shop.saga(held_up)["steps"] if s["name"] == "commit_stock")
    assert (commit["status"], commit["error"].split(":")[0]) == ("FAILED", "out_of_stock")
    assert (shop.shipments(held_up), len(shop.shipments(later["id"]))) == ([], 1)
    assert shop.stock(sku) == (0, 0, 10)  # sold once, to the order that shipped


def test_units_released_under_a_live_saga_and_still_there_are_taken_again(sweeping):
    shop, sku = sweeping, sweeping.product(stock=10)
    held_up = start_slowed_down(shop, sku, 4)

    order = shop.settled(held_up)

    assert (order["status"], order["payment"]["status"]) == ("APPROVED", "CHARGED")
    shop.assert_conserved(order, sku, 4, 10)
