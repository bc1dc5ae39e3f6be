"""Two orchestrators on one database: one is killed mid-run, and every saga still finishes exactly once."""

import os
import signal
import uuid


def test_sagas_of_a_killed_orchestrator_finish_once_on_the_other(faulty, tmp_path):
    shop = faulty
    with (tmp_path / "replica.log").open("wb") as log:
        replica, _ = shop.spawn("orchestrator", log)
        try:
            sku = shop.product(stock=20)
            shop.add_fault(service="payment", method="Charge", delay_ms=2_000, count=6)
            placed = [shop.place_until_answered(shop.order_body({sku: 1}), shop.customer(), uuid.uuid4().hex)
                      for _ in range(6)]
            victim = shop.part("orchestrator")
            os.kill(victim.pid, signal.SIGKILL)  # mid-run: its sagas wait in Charge's delay

            orders = [shop.settled(p["id"]) for p in placed]
        finally:
            replica.send_signal(signal.SIGTERM)
            replica.wait(30)

    assert [o["status"] for o in orders] == ["APPROVED"] * 6
    assert [shop.ledger(o["id"]) for o in orders] == [[("charge", 2_500)]] * 6
    assert shop.stock(sku) == (14, 0, 6)
