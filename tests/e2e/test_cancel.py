"""Cancelling an approved order: shipment cancelled, payment refunded, stock returned; once."""


def test_cancelling_an_approved_order_refunds_it_returns_the_stock_and_cancels_the_shipment(shop):
    sku, user = shop.product(stock=5, price_cents=1_500), shop.customer()
    order = shop.place_order({sku: 2}, user=user)

    reply = shop.http.post(f"/v1/orders/{order['id']}/cancel", headers=user)
    assert reply.status_code == 200, reply.text
    cancelled = reply.json()
    assert (cancelled["status"], cancelled["payment"]) == ("CANCELLED", {"status": "REFUNDED", "amount_cents": 3_000})
    assert cancelled["shipment"] is None
    assert shop.stock(sku) == (5, 0, 0)
    assert shop.ledger(order["id"]) == [("charge", 3_000), ("refund", 3_000)]
    assert shop.shipments(order["id"]) == []
    saga = shop.http.get(f"/v1/admin/sagas/{order['id']}-cancel", headers=shop.admin).json()
    assert (saga["name"], saga["state"]) == ("cancellation", "SUCCEEDED")

    again = shop.http.post(f"/v1/orders/{order['id']}/cancel", headers=user)
    assert (again.status_code, again.json()["status"]) == (200, "CANCELLED")
    assert shop.ledger(order["id"]) == [("charge", 3_000), ("refund", 3_000)]


def test_only_an_approved_order_can_be_cancelled_and_only_by_its_owner(shop):
    user = shop.customer()
    rejected = shop.place_order({shop.product(stock=1): 1}, token="tok_declined", user=user)
    reply = shop.http.post(f"/v1/orders/{rejected['id']}/cancel", headers=user)
    assert (reply.status_code, reply.json()["code"]) == (409, "not_cancellable")

    approved = shop.place_order({shop.product(stock=1): 1}, user=user)
    stranger = shop.http.post(f"/v1/orders/{approved['id']}/cancel", headers=shop.customer())
    assert (stranger.status_code, stranger.json()["code"]) == (404, "not_found")
