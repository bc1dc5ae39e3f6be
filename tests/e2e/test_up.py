"""`sagashop up` keeps the shop running: a part killed with SIGKILL is restarted and the shop is ready again."""

import os
import signal
import time

import httpx
import psutil
import pytest


def part_process(shop, part: str) -> psutil.Process:
    for child in psutil.Process(shop.pid).children():
        if child.cmdline()[-2:] == ["serve", part]:
            return child
    raise AssertionError(f"no running {part} under sagashop up")


def ready_again(shop, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if shop.http.get("/readyz").status_code == 200:
                return
        except httpx.HTTPError:  # the gateway itself is still starting
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready {within}s after the kill")


@pytest.mark.parametrize("part", ["inventory", "orchestrator", "gateway"])
def test_a_killed_part_is_restarted_and_the_shop_serves_again(shop, part):
    victim = part_process(shop, part)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)

    ready_again(shop)
    assert part_process(shop, part).pid != victim.pid
    assert shop.place_order({shop.product(stock=2): 1})["status"] == "APPROVED"
