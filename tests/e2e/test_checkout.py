"""Checkout through the gateway: the happy path and every compensation path, as a user sees them."""

from concurrent.futures import ThreadPoolExecutor

EXECUTED = [("create_order", "execute"), ("reserve_stock", "execute"), ("charge_payment", "execute")]


def test_an_order_is_approved_charged_shipped_and_its_stock_sold(shop):
    sku = shop.product(stock=5, price_cents=3_900)
    order = shop.place_order({sku: 2})

    assert (order["status"], order["failure_reason"]) == ("APPROVED", None)
    assert order["items"] == [{"sku": sku, "quantity": 2, "unit_price_cents": 3_900}]
    assert (order["total_cents"], order["currency"]) == (7_800, "EUR")
    assert order["payment"] == {"status": "CHARGED", "amount_cents": 7_800}
    assert order["shipment"]["tracking_number"]
    assert shop.available(sku) == 3
    assert shop.ledger(order["id"]) == [("charge", 7_800)]
    assert shop.timeline(order["id"]) == [*EXECUTED, ("commit_stock", "execute"), ("create_shipment", "execute"),
                                          ("approve_order", "execute")]
    assert shop.http.get(f"/v1/orders/{order['id']}", headers=shop.admin).json() == order  # answered as stored


def test_a_declined_payment_rejects_the_order_and_returns_the_stock(shop):
    sku = shop.product(stock=5)
    order = shop.place_order({sku: 2}, token="tok_declined")

    assert (order["status"], order["failure_reason"]) == ("REJECTED", "payment_declined")
    assert order["payment"] == {"status": "NONE", "amount_cents": 0}
    assert order["shipment"] is None
    assert shop.available(sku) == 5
    assert shop.ledger(order["id"]) == []
    assert shop.timeline(order["id"]) == [*EXECUTED, ("charge_payment", "compensate"),
                                          ("reserve_stock", "compensate"), ("reject_order", "execute")]
    assert shop.http.get(f"/v1/orders/{order['id']}", headers=shop.admin).json() == order


def test_a_rejected_shipment_refunds_the_charge_and_returns_the_stock(shop):
    sku = shop.product(stock=5, price_cents=1_000)
    order = shop.place_order({sku: 2}, country="AQ")

    assert (order["status"], order["failure_reason"]) == ("REJECTED", "shipping_rejected")
    assert order["payment"] == {"status": "REFUNDED", "amount_cents": 2_000}
    assert shop.available(sku) == 5
    assert shop.ledger(order["id"]) == [("charge", 2_000), ("refund", 2_000)]
    assert shop.timeline(order["id"]) == [
        *EXECUTED, ("commit_stock", "execute"), ("create_shipment", "execute"), ("create_shipment", "compensate"),
        ("charge_payment", "compensate"), ("reserve_stock", "compensate"), ("reject_order", "execute")]


def test_an_order_for_more_than_is_in_stock_is_rejected_and_takes_nothing(shop):
    sku, other = shop.product(stock=1), shop.product(stock=5)
    order = shop.place_order({other: 2, sku: 3})

    assert (order["status"], order["failure_reason"]) == ("REJECTED", "out_of_stock")
    assert (shop.available(sku), shop.available(other)) == (1, 5)
    assert shop.ledger(order["id"]) == []


def test_an_order_naming_an_unknown_product_is_refused_at_once_and_nothing_is_stored(shop):
    user, sku = shop.customer(), shop.product(stock=5)
    before = shop.http.get("/v1/orders", headers=user).json()["items"]
    refused = shop.place({sku: 1, "NO-SUCH-SKU": 1, "NOR-THIS": 2}, user=user)

    assert (refused.status_code, refused.headers["content-type"]) == (422, "application/problem+json")
    assert refused.json()["code"] == "unknown_product"
    assert "NO-SUCH-SKU" in refused.json()["detail"] and "NOR-THIS" in refused.json()["detail"]
    assert shop.http.get("/v1/orders", headers=user).json()["items"] == before == []
    assert shop.stock(sku) == (5, 0, 0)


def test_twenty_concurrent_orders_for_five_units_approve_exactly_five(shop):
    sku = shop.product(stock=5)
    users = [shop.customer() for _ in range(20)]
    with ThreadPoolExecutor(20) as pool:
        orders = list(pool.map(lambda user: shop.place_order({sku: 1}, user=user), users))

    statuses = [o["status"] for o in orders]
    assert statuses.count("APPROVED") == 5
    assert {o["failure_reason"] for o in orders if o["status"] == "REJECTED"} == {"out_of_stock"}
    assert shop.available(sku) == 0
    assert sum(shop.net_charged(o["id"]) for o in orders) == 5 * 2_500


def test_without_waiting_the_order_is_accepted_pending_and_settles_later(shop):
    sku = shop.product(stock=5)
    user = shop.customer()
    reply = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}), headers={**user, "Prefer": "wait=0"})

    assert reply.status_code in (201, 202)
    if reply.status_code == 202:
        assert reply.json()["status"] == "PENDING"
        assert reply.headers["Location"] == f"/v1/orders/{reply.json()['id']}"
    assert shop.settled(reply.json()["id"])["status"] == "APPROVED"


def test_a_repeated_idempotency_key_returns_the_same_order_and_charges_once(shop):
    sku = shop.product(stock=5)
    user = {**shop.customer(), "Idempotency-Key": "checkout-1"}
    first = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}), headers=user)
    again = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}), headers=user)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert shop.ledger(first.json()["id"]) == [("charge", 2_500)]
    assert shop.available(sku) == 4

    other_body = shop.http.post("/v1/orders", json=shop.order_body({sku: 2}), headers=user)
    assert (other_body.status_code, other_body.json()["code"]) == (409, "idempotency_conflict")
