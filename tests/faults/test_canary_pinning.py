"""A saga pinned to the canary runs every step and compensation on v2 of the services that have one."""

import json
import signal

import grpc

from sagashop.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tools.shopclient import ADDRESS


def start_checkout(shop, port: int, user_id: str, sku: str, country: str) -> str:
    request = orchestrator_pb2.StartCheckoutRequest(
        user_id=user_id, lines=[{"sku": sku, "quantity": 1}], payment_token="tok_ok",
        address={**ADDRESS, "country": country}, wait_ms=10_000)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return orchestrator_pb2_grpc.OrchestratorServiceStub(channel).StartCheckout(request, timeout=20,
                                                                                   metadata=shop.signed).order_id


def test_a_saga_started_on_the_canary_route_stays_on_payment_v2_for_its_charge_and_refund(faulty, tmp_path):
    shop, sku = faulty, faulty.product(stock=5)
    user_id = shop.http.get("/v1/users/me", headers=shop.admin).json()["id"]
    with (tmp_path / "canary.log").open("wb") as log:
        payment_v2, port_v2 = shop.spawn("payment", log, SAGASHOP_VERSION="v2")
        orchestrator, port = shop.spawn("orchestrator", log, SAGASHOP_CANARY_PERCENT="100",
                                        SAGASHOP_CANARY_ADDRESSES=json.dumps({"payment": f"127.0.0.1:{port_v2}"}))
        try:
            approved = start_checkout(shop, port, user_id, sku, "FR")
            rejected = start_checkout(shop, port, user_id, sku, "AQ")  # charged on v2, then refunded on v2
        finally:
            for process in (orchestrator, payment_v2):
                process.send_signal(signal.SIGTERM)
                process.wait(30)

    for order_id in (approved, rejected):
        saga = shop.saga(order_id)
        assert saga["route"] == "v2"
        handled = {(s["name"], s["action"]): s["handled_by"] for s in saga["steps"]}
        assert {by for (name, _), by in handled.items() if name == "charge_payment"} == {"payment@v2"}
        assert handled[("reserve_stock", "execute")] == "inventory@v1"  # no inventory canary here
    assert ("charge_payment", "compensate") in {(s["name"], s["action"]) for s in shop.saga(rejected)["steps"]}
    assert shop.ledger(rejected) == [("charge", 2_500), ("refund", 2_500)]
    assert shop.settled(approved)["status"] == "APPROVED"
