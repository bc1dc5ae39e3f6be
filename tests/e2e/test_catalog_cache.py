"""The gateway's catalog cache as a shopper sees it: product reads are answered from it (the shop's TTL is a minute),
yet a change shows within seconds, however it was made: through the gateway, by a checkout, or behind the
gateway's back (the inventory service called directly), which only the inventory's events can tell it."""

import time

import grpc

from sagashop.v1 import inventory_pb2, inventory_pb2_grpc
from tests.e2e.test_tracing import metrics_of
from tests.shop import Shop

FRESH_WITHIN = 3.0  # seconds: the relay's round and the event's way to the gateway, with room to spare


def hits(shop: Shop) -> float:
    return sum(v for (name, _), v in metrics_of(shop, "gateway").items()
               if name == "sagashop_catalog_cache_hits_total")


def seen_within(shop: Shop, sku: str, available: int) -> float:
    """Seconds until both product reads show `available` units of `sku`; fails after FRESH_WITHIN."""
    began = time.monotonic()
    while time.monotonic() - began < FRESH_WITHIN:
        listed = {p["sku"]: p["available"] for p in shop.http.get("/v1/products").json()["items"]}
        if listed.get(sku) == available and shop.available(sku) == available:
            return time.monotonic() - began
        time.sleep(0.05)
    raise AssertionError(f"{sku} still shows {shop.available(sku)} units, not {available}, after {FRESH_WITHIN} s")


def test_product_reads_are_answered_from_the_cache(shop):
    sku = shop.product(stock=5)
    deadline = time.monotonic() + FRESH_WITHIN
    while True:  # the product's own event, or a late one of an earlier test, may drop it during a round: again
        before = hits(shop)
        reads = [shop.available(sku) for _ in range(3)]
        answered = hits(shop) - before
        if answered >= 3 or time.monotonic() > deadline:
            break
    assert reads == [5, 5, 5] and answered >= 3


def test_a_change_behind_the_gateways_back_shows_within_seconds(shop):
    sku = shop.product(stock=5)
    assert seen_within(shop, sku, 5) >= 0  # both reads cached now
    with grpc.insecure_channel(f"127.0.0.1:{shop.env['SAGASHOP_INVENTORY_PORT']}") as channel:
        inventory_pb2_grpc.InventoryServiceStub(channel).UpsertProduct(inventory_pb2.UpsertProductRequest(
            product=inventory_pb2.Product(sku=sku, name=f"Test {sku}", price_cents=2_500, currency="EUR",
                                          available=8)), timeout=10, metadata=shop.signed)
    seen_within(shop, sku, 8)


def test_a_checkout_and_an_admins_write_show_at_once_or_within_seconds(shop):
    sku = shop.product(stock=5)
    seen_within(shop, sku, 5)
    shop.place_order({sku: 2})
    seen_within(shop, sku, 3)
    shop.run(shop.client.put_product(sku, 9, name=f"Test {sku}"))
    assert shop.available(sku) == 9  # the write dropped it at once
