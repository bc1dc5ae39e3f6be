"""`sagashop bench` against the test shop: through the gateway, straight to the orchestrator, and the baseline that
makes the same calls with no saga log."""

import json
import subprocess
import sys

import pytest

from sagashop.kit.settings import PARTS


def bench(shop, *args: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "tools.cli", "bench", "--url", shop.url, "--checkouts", "12",
                          "--concurrency", "3", "--json", *args], env=shop.env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def newest_saga(shop) -> str:
    reply = shop.http.get("/v1/admin/sagas", params={"limit": 1}, headers=shop.admin)
    reply.raise_for_status()
    return reply.json()["items"][0]["saga_id"]


@pytest.mark.parametrize("how", ["gateway", "direct"])
def test_every_checkout_is_approved_and_timed_with_its_steps(shop, how):
    args = ["--direct", f"127.0.0.1:{shop.env['SAGASHOP_ORCHESTRATOR_PORT']}"] if how == "direct" else []
    figures = bench(shop, *args)

    assert figures["checkouts"] == 12
    assert sum(figures["outcomes"].values()) == 12
    assert set(figures["outcomes"]) == ({"APPROVED"} if how == "gateway" else {"SUCCEEDED"})
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert list(figures["steps_ms"]) == ["create_order", "reserve_stock", "charge_payment", "commit_stock",
                                         "create_shipment", "approve_order"]
    assert shop.available(figures["sku"]) == 12 * 2 + 10 - 12  # one unit sold per checkout
    assert set(figures["cpu_ms_per_checkout"]) == set(PARTS)  # the shop runs here: its processes are watched
    assert figures["cpu_ms_per_checkout"]["orchestrator"] > 0
    assert figures["client_cpu_ms_per_checkout"] > 0  # the benchmark's own share of the machine
    assert all(0 < mib["first"] <= mib["max"] for mib in figures["memory_mib"].values())


def test_the_baseline_makes_the_same_calls_without_writing_the_saga_log(shop):
    shop.place_order({shop.product(stock=5): 1})
    before = newest_saga(shop)

    figures = bench(shop, "--without-log")

    assert figures["outcomes"] == {"SUCCEEDED": 12}
    assert shop.available(figures["sku"]) == 12 * 2 + 10 - 12  # the stock was reserved and committed ...
    assert newest_saga(shop) == before  # ... and not one saga was logged
