"""The order is created while its stock is reserved (two saga steps run together): what a customer sees when one
of the two is slow."""

from .test_compensation import step


def test_an_order_placed_without_waiting_exists_at_once_while_its_stock_is_still_being_reserved(faulty):
    shop, sku = faulty, faulty.product(stock=5)
    shop.add_fault(service="inventory", method="ReserveStock", delay_ms=1_500, count=1)
    placed = shop.http.post("/v1/orders", json=shop.order_body({sku: 2}), headers={**shop.customer(),
                                                                                   "Prefer": "wait=0"})

    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    assert shop.http.get(f"/v1/orders/{order_id}", headers=shop.admin).json()["status"] == "PENDING"
    assert step(shop.saga(order_id), "reserve_stock", "execute")["status"] == "RUNNING"  # still under way
    order = shop.settled(order_id)
    assert order["status"] == "APPROVED"
    shop.assert_conserved(order, sku, 2, 5)


def test_an_order_out_of_stock_waits_for_its_slow_creation_then_is_rejected_with_nothing_left(faulty):
    shop, sku = faulty, faulty.product(stock=5)
    shop.add_fault(service="order", method="CreateOrder", delay_ms=1_000, count=1)
    order = shop.place_order({sku: 6})  # refused at once, while the order is still being created

    assert (order["status"], order["failure_reason"]) == ("REJECTED", "out_of_stock")
    saga = shop.saga(order["id"])
    assert [(s["name"], s["action"], s["status"]) for s in saga["steps"]] == [
        ("create_order", "execute", "SUCCEEDED"), ("reserve_stock", "execute", "FAILED"),
        ("reserve_stock", "compensate", "SUCCEEDED"), ("reject_order", "execute", "SUCCEEDED")]
    shop.assert_conserved(order, sku, 6, 5)
