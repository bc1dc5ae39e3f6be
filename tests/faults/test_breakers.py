"""A service that keeps failing opens its circuit (visible to admins and in metrics); it closes once healed."""

import time

import httpx


def breaker(shop, part: str, name: str) -> str:
    items = shop.http.get("/v1/admin/breakers", headers=shop.admin).json()["items"]
    return next(b["state"] for b in items if (b["part"], b["name"]) == (part, name))


def orchestrator_metrics(shop) -> str:
    port = int(shop.env["SAGASHOP_ORCHESTRATOR_PORT"]) + 1000  # how `sagashop up` places each part's metrics
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def wait_for(what, within: float = 15):
    deadline = time.monotonic() + within
    while not what():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def test_a_failing_service_opens_its_circuit_which_closes_again_once_it_recovers(faulty):
    shop, sku = faulty, faulty.product(stock=5)
    for method in ("CreateShipment", "CancelShipment"):  # shipping is down
        shop.add_fault(service="shipping", method=method, error="UNAVAILABLE")
    placed = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}),
                            headers={**shop.customer(), "Prefer": "wait=0"}).json()

    wait_for(lambda: breaker(shop, "orchestrator", "shipping") == "open")
    assert breaker(shop, "gateway", "shipping") == "closed"  # the gateway never called it
    metrics = orchestrator_metrics(shop)
    assert 'sagashop_circuit_breaker_state{dependency="shipping",state="open",version="v1"} 1.0' in metrics
    assert 'sagashop_circuit_breaker_failures{dependency="shipping",version="v1"}' in metrics

    wait_for(lambda: shop.saga(placed["id"])["state"] == "COMPENSATING")  # the step's deadline passed
    shop.clear_faults()  # shipping is back: a trial call closes the circuit and the saga compensates
    order = shop.settled(placed["id"])
    assert (order["status"], order["failure_reason"]) == ("REJECTED", "shipping_unavailable")
    wait_for(lambda: breaker(shop, "orchestrator", "shipping") == "closed")
    assert ('sagashop_saga_completed_total{failure_reason="shipping_unavailable",inventory_version="v1",'
            'order_version="v1",outcome="compensated",payment_version="v1",saga="checkout",shipping_version="v1",'
            'version="v1"}') in orchestrator_metrics(shop)
    shop.assert_conserved(order, sku, 1, 5)
