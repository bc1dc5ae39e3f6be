"""Following a saga: its timeline says who handled each step, and a stream follows it live."""

import contextlib
import json
import time


def events(shop, order_id: str, user: dict) -> list[dict]:
    with shop.http.stream("GET", f"/v1/orders/{order_id}/saga/events", headers=user) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        return [json.loads(line.removeprefix("data: ")) for line in reply.iter_lines() if line.startswith("data: ")]


def test_each_step_says_which_service_and_version_handled_it(shop):
    order = shop.place_order({shop.product(stock=1): 1})
    handled = {s["name"]: s["handled_by"] for s in shop.saga(order["id"])["steps"]}
    assert handled["reserve_stock"] == "inventory@v1"
    assert handled["charge_payment"] == "payment@v1"
    assert handled["create_shipment"] == "shipping@v1"


def test_a_step_that_was_refused_says_who_refused_it_and_its_undos_who_ran_them(shop):
    order = shop.place_order({shop.product(stock=1): 1}, country="AQ")  # shipping refuses Antarctica
    assert order["status"] == "REJECTED"
    steps = {(s["name"], s["action"]): s for s in shop.saga(order["id"])["steps"]}
    refused = steps[("create_shipment", "execute")]
    assert (refused["status"], refused["handled_by"]) == ("FAILED", "shipping@v1")
    assert refused["error"].startswith("shipping_rejected")
    assert steps[("charge_payment", "compensate")]["handled_by"] == "payment@v1"


def test_a_saga_can_be_followed_live_until_it_ends(shop):
    sku, user = shop.product(stock=1), shop.customer()
    shop.add_fault(service="payment", method="Charge", delay_ms=1_500, count=1)
    try:
        placed = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}),
                                headers={**user, "Prefer": "wait=0"}).json()
        seen = events(shop, placed["id"], user)
    finally:
        shop.clear_faults()

    assert len(seen) >= 2
    assert seen[0]["state"] == "RUNNING" and seen[-1]["state"] == "SUCCEEDED"
    assert len(seen[-1]["steps"]) > len(seen[0]["steps"])
    assert all(before != after for before, after in zip(seen, seen[1:], strict=False))  # no event repeats the last


def test_a_user_may_follow_only_so_many_sagas_at_once(shop):
    sku, user = shop.product(stock=1), shop.customer()
    shop.add_fault(service="payment", method="Charge", delay_ms=1_900, count=1)  # the saga runs for two seconds
    try:
        placed = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}),
                                headers={**user, "Prefer": "wait=0"}).json()
        url = f"/v1/orders/{placed['id']}/saga/events"
        with contextlib.ExitStack() as open_streams:
            following = [open_streams.enter_context(shop.http.stream("GET", url, headers=user)) for _ in range(5)]
            assert [reply.status_code for reply in following] == [200] * 5
            refused = shop.http.get(url, headers=user)
            assert (refused.status_code, refused.json()["code"], refused.headers["retry-after"]) == (
                429, "rate_limited", "5")
            with shop.http.stream("GET", url, headers=shop.admin) as other:  # another user's streams count apart
                assert other.status_code == 200
        deadline = time.monotonic() + 10  # once the gateway has seen them closed, the user may follow again
        while (again := shop.http.get(url, headers=user)).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert again.status_code == 200 and '"state":"SUCCEEDED"' in again.text
    finally:
        shop.clear_faults()
