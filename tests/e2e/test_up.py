"""`sagashop up` keeps the shop running: a part killed with SIGKILL is restarted and the shop is ready again."""

import os
import signal

import pytest


@pytest.mark.parametrize("part", ["inventory", "orchestrator", "gateway"])
def test_a_killed_part_is_restarted_and_the_shop_serves_again(shop, part):
    victim = shop.part(part)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)

    shop.ready_again()
    assert shop.part(part).pid != victim.pid
    assert shop.place_order({shop.product(stock=2): 1})["status"] == "APPROVED"
