"""What the orchestrator takes in, straight over gRPC (as after a gateway that forgot the key, or one of many): a
keyed repeat finds its order even when the order could not be placed now; an account has only so many checkouts
under way at once."""

import uuid

import grpc
import pytest

from sagashop.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tools.shopclient import ADDRESS


def start(shop, port: int, user_id: str, sku: str, key: str = "",
          wait_ms: int = 10_000) -> orchestrator_pb2.StartCheckoutReply:
    request = orchestrator_pb2.StartCheckoutRequest(
        user_id=user_id, idempotency_key=key, lines=[{"sku": sku, "quantity": 1}], payment_token="tok_ok",
        address=ADDRESS, wait_ms=wait_ms)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return orchestrator_pb2_grpc.OrchestratorServiceStub(channel).StartCheckout(request, timeout=20,
                                                                                   metadata=shop.signed)


def refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), dict(refused.value.trailing_metadata()).get("error-code", "")


def test_a_repeat_finds_its_order_while_the_catalog_is_down_and_a_new_order_is_refused(faulty):
    shop, sku = faulty, faulty.product(stock=5)
    port, user_id, key = int(shop.env["SAGASHOP_ORCHESTRATOR_PORT"]), uuid.uuid4().hex, uuid.uuid4().hex
    first = start(shop, port, user_id, sku, key)
    assert (first.created, first.state) == (True, "SUCCEEDED")

    shop.add_fault(service="inventory", method="ListProducts", error="UNAVAILABLE")
    again = start(shop, port, user_id, sku, key)
    assert (again.created, again.order_id) == (False, first.order_id)
    assert refusal(lambda: start(shop, port, user_id, sku, uuid.uuid4().hex))[0] == grpc.StatusCode.UNAVAILABLE
    assert shop.stock(sku) == (4, 0, 1)


def test_an_account_has_only_so_many_checkouts_under_way_and_a_repeat_is_still_answered(faulty, tmp_path):
    shop, sku = faulty, faulty.product(stock=10)
    with (tmp_path / "orchestrator.log").open("wb") as log:
        orchestrator, port = shop.spawn("orchestrator", log, SAGASHOP_MAX_PENDING_ORDERS="2")
    try:
        shop.add_fault(service="payment", method="Charge", delay_ms=1_900, count=3)  # sagas under way for a while
        user_id, key = uuid.uuid4().hex, uuid.uuid4().hex
        first = start(shop, port, user_id, sku, key, wait_ms=0)
        start(shop, port, user_id, sku, wait_ms=0)

        assert refusal(lambda: start(shop, port, user_id, sku, wait_ms=0)) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                                        "rate_limited")
        assert start(shop, port, user_id, sku, key, wait_ms=0).order_id == first.order_id  # a repeat, not a new order
        assert start(shop, port, uuid.uuid4().hex, sku, wait_ms=0).created  # another account's count is its own
        shop.settled(first.order_id)
        assert start(shop, port, user_id, sku).state == "SUCCEEDED"  # once one has ended, the account may order again
    finally:
        orchestrator.terminate()
        orchestrator.wait(30)
