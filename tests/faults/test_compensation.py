"""Compensations never give up: they retry until they succeed, or park the saga for an operator."""

import time


def wait_for_state(shop, order_id: str, state: str, within: float = 60) -> dict:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        saga = shop.saga(order_id)
        if saga["state"] == state:
            return saga
        time.sleep(0.3)
    raise AssertionError(f"saga of {order_id} not {state} after {within}s: {shop.saga(order_id)['state']}")


def step(saga: dict, name: str, action: str) -> dict:
    return next(s for s in saga["steps"] if (s["name"], s["action"]) == (name, action))


def test_a_compensation_that_fails_twice_is_retried_until_the_stock_is_back(faulty):
    shop, sku = faulty, faulty.product(stock=5)
    shop.add_fault(service="inventory", method="ReleaseStock", error="UNAVAILABLE", count=2)
    order = shop.place_order({sku: 2}, token="tok_declined")

    assert (order["status"], order["failure_reason"]) == ("REJECTED", "payment_declined")
    assert step(shop.saga(order["id"]), "reserve_stock", "compensate")["attempts"] == 3
    shop.assert_conserved(order, sku, 2, 5)


def test_a_compensation_that_keeps_failing_parks_the_saga_until_an_operator_retries_it(faulty):
    shop, sku = faulty, faulty.product(stock=5)
    shop.add_fault(service="inventory", method="ReleaseStock", error="INTERNAL")
    user = shop.customer()
    placed = shop.http.post("/v1/orders", json=shop.order_body({sku: 2}, token="tok_declined"),
                            headers={**user, "Prefer": "wait=0"}).json()

    parked = wait_for_state(shop, placed["id"], "NEEDS_ATTENTION")
    assert step(parked, "reserve_stock", "compensate")["status"] == "FAILED"
    listed = shop.http.get("/v1/admin/sagas", params={"state": "NEEDS_ATTENTION"}, headers=shop.admin).json()
    assert placed["id"] in [s["saga_id"] for s in listed["items"]]
    assert shop.stock(sku) == (3, 2, 0)  # held until someone acts

    shop.clear_faults()
    retried = shop.http.post(f"/v1/admin/sagas/{placed['id']}/retry", json={"reason": "inventory fixed"},
                             headers=shop.admin)
    assert retried.status_code == 200, retried.text
    assert [(a["action"], a["reason"]) for a in retried.json()["audit"]] == [("retry", "inventory fixed")]
    order = shop.settled(placed["id"])
    assert (order["status"], order["failure_reason"]) == ("REJECTED", "payment_declined")
    assert wait_for_state(shop, placed["id"], "COMPENSATED")
    shop.assert_conserved(order, sku, 2, 5)


def test_an_operator_may_abort_a_parked_saga_but_not_one_that_runs_or_ended(faulty):
    shop, sku = faulty, faulty.product(stock=5)
    shop.add_fault(service="payment", method="Refund", error="INTERNAL")
    owner = shop.customer()
    placed = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}, country="AQ"),
                            headers={**owner, "Prefer": "wait=0"}).json()
    wait_for_state(shop, placed["id"], "NEEDS_ATTENTION")

    aborted = shop.http.post(f"/v1/admin/sagas/{placed['id']}/abort", json={"reason": "refunded by hand"},
                             headers=shop.admin)
    assert (aborted.json()["state"], aborted.json()["failure_reason"]) == ("ABORTED", "refunded by hand")
    seen = shop.http.get(f"/v1/orders/{placed['id']}/saga", headers=owner).json()  # the operators' words stay theirs
    assert (seen["state"], seen["failure_reason"], seen["audit"]) == ("ABORTED", None, [])
    errors = {s["error"] for s in seen["steps"] if s["error"]}
    assert "shipping_rejected" in errors and not any(":" in e for e in errors)  # codes, not what they said
    assert shop.http.get(f"/v1/orders/{placed['id']}/saga", headers=shop.admin).json()["audit"][0]["reason"] == (
        "refunded by hand")
    again = shop.http.post(f"/v1/admin/sagas/{placed['id']}/retry", headers=shop.admin)
    assert (again.status_code, again.json()["code"]) == (409, "not_parked")
    assert shop.http.post(f"/v1/admin/sagas/{placed['id']}/retry", headers=shop.customer()).status_code == 403
