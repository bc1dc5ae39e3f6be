"""A keyed checkout asked for again reaches the orchestrator when the gateway's fast path forgot the key (another
gateway, a restart): the repeat is answered with the order that exists, even while the catalog cannot price it."""

import uuid

import grpc
import pytest

from sagashop.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tools.shopclient import ADDRESS


def start(port: int, user_id: str, sku: str, key: str) -> orchestrator_pb2.StartCheckoutReply:
    request = orchestrator_pb2.StartCheckoutRequest(
        user_id=user_id, idempotency_key=key, lines=[{"sku": sku, "quantity": 1}], payment_token="tok_ok",
        address=ADDRESS, wait_ms=10_000)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return orchestrator_pb2_grpc.OrchestratorServiceStub(channel).StartCheckout(request, timeout=20)


def test_a_repeat_finds_its_order_while_the_catalog_is_down_and_a_new_order_is_refused(faulty):
    shop, sku = faulty, faulty.product(stock=5)
    port, user_id, key = int(shop.env["SAGASHOP_ORCHESTRATOR_PORT"]), uuid.uuid4().hex, uuid.uuid4().hex
    first = start(port, user_id, sku, key)
    assert (first.created, first.state) == (True, "SUCCEEDED")

    shop.add_fault(service="inventory", method="ListProducts", error="UNAVAILABLE")
    again = start(port, user_id, sku, key)
    assert (again.created, again.order_id) == (False, first.order_id)
    with pytest.raises(grpc.RpcError) as refused:
        start(port, user_id, sku, uuid.uuid4().hex)  # a new order does need its prices
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert shop.stock(sku) == (4, 0, 1)
