"""Per-part canaries: a saga pinned to payment v2 runs every payment step and compensation there and every other part
on v1; the weights are read from their directory while the orchestrator runs; a v2 that does not answer pins none."""

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from sagashop.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tests.shop import Shop
from tools.local.parts import free_port
from tools.shopclient import ADDRESS

ON_V1 = {"order": "v1", "inventory": "v1", "payment": "v1", "shipping": "v1"}
PAYMENT_ON_V2 = {**ON_V1, "payment": "v2"}


@dataclass
class Canary:
    """An orchestrator of its own beside the shop, reading its weights from `weights`, with a payment v2."""

    shop: Shop
    port: int
    metrics_port: int
    weights: Path
    log: Path
    payment_v2: subprocess.Popen[bytes]
    user_id: str
    sku: str

    def weigh(self, **weights: int) -> None:
        for part, weight in weights.items():
            (self.weights / part).write_text(str(weight))

    def weight_in_use(self, part: str, weight: float, within: float = 10) -> None:
        """Waits until the orchestrator's gauge shows `weight` for `part`."""
        deadline, line = time.monotonic() + within, f'sagashop_canary_weight{{part="{part}"}} {float(weight)}'
        while line not in httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text:
            assert time.monotonic() < deadline, f"not in use within {within}s: {line}"
            time.sleep(0.1)

    def logged(self, text: str, within: float = 10) -> None:
        """Waits until the orchestrator has logged `text` (a weight read, a probe answered)."""
        deadline = time.monotonic() + within
        while text not in self.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"not logged in {within}s: {text}"
            time.sleep(0.1)

    def checkout(self, country: str = "FR", wait_ms: int = 10_000) -> str:
        request = orchestrator_pb2.StartCheckoutRequest(
            user_id=self.user_id, lines=[{"sku": self.sku, "quantity": 1}], payment_token="tok_ok",
            address={**ADDRESS, "country": country}, wait_ms=wait_ms)
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            return stub.StartCheckout(request, timeout=20, metadata=self.shop.signed).order_id

    def cancel(self, order_id: str) -> orchestrator_pb2.Saga:
        """Cancels through this orchestrator, whose cancellation saga picks its pins from its own weights."""
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            saga: orchestrator_pb2.Saga = stub.CancelOrder(orchestrator_pb2.CancellationRequest(
                order_id=order_id, wait_ms=10_000), timeout=20, metadata=self.shop.signed)
            return saga

    def versions(self, order_id: str) -> dict[str, str]:
        return self.shop.saga(order_id)["versions"]  # type: ignore[no-any-return]


@pytest.fixture
def canary(faulty: Shop, tmp_path: Path) -> Iterator[Canary]:
    weights, log = tmp_path / "canary", tmp_path / "canary.log"
    weights.mkdir()
    (weights / "payment").write_text("100")
    with log.open("wb") as out:
        payment_v2, port_v2 = faulty.spawn("payment", out, SAGASHOP_VERSION="v2")
        # a step waits on a failing service long enough for the tests to change weights meanwhile
        metrics_port = free_port()
        orchestrator, port = faulty.spawn("orchestrator", out, SAGASHOP_CANARY_WEIGHTS_DIR=str(weights),
                                          SAGASHOP_STEP_DEADLINE_SECONDS="30", SAGASHOP_METRICS_PORT=str(metrics_port),
                                          SAGASHOP_CANARY_ADDRESSES=json.dumps({"payment": f"127.0.0.1:{port_v2}"}))
        try:
            user_id = faulty.http.get("/v1/users/me", headers=faulty.admin).json()["id"]
            canary = Canary(faulty, port, metrics_port, weights, log, payment_v2, user_id, faulty.product(stock=20))
            canary.logged("payment v2 answers its health check")
            yield canary
        finally:
            for process in (orchestrator, payment_v2):
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def test_a_saga_pinned_to_payment_v2_is_charged_and_refunded_there_and_calls_the_other_parts_on_v1(canary):
    shop = canary.shop
    approved, rejected = canary.checkout("FR"), canary.checkout("AQ")  # AQ: charged on v2, then refunded on v2

    for order_id in (approved, rejected):
        saga = shop.saga(order_id)
        assert (saga["route"], saga["versions"]) == ("v2", PAYMENT_ON_V2)
        handled = {(s["name"], s["action"]): s["handled_by"] for s in saga["steps"]}
        assert {by for (name, _), by in handled.items() if name == "charge_payment"} == {"payment@v2"}
        assert (handled[("create_order", "execute")], handled[("reserve_stock", "execute")]) == (
            "order@v1", "inventory@v1")
    handled = {(s["name"], s["action"]): s["handled_by"] for s in shop.saga(rejected)["steps"]}
    assert (handled[("charge_payment", "compensate")], handled[("create_shipment", "execute")]) == (
        "payment@v2", "shipping@v1")
    assert shop.ledger(rejected) == [("charge", 2_500), ("refund", 2_500)]
    assert shop.settled(approved)["status"] == "APPROVED"


def test_a_weight_written_while_the_orchestrator_runs_pins_new_sagas_and_moves_no_started_one(canary):
    shop = canary.shop
    shop.add_fault(service="shipping", method="CreateShipment", error="UNAVAILABLE", rate=1.0)
    started = canary.checkout("AQ", wait_ms=0)  # charged on payment v2, then held up at shipping
    assert canary.versions(started) == PAYMENT_ON_V2

    canary.weigh(payment=0, user=100)  # a canary of the user service is no saga's business
    canary.weight_in_use("payment", 0)  # read within a second or so, no restart
    later = canary.checkout(wait_ms=0)
    assert (canary.versions(later), shop.saga(later)["route"]) == (ON_V1, "v1")
    shop.clear_faults()  # the started saga goes on: shipping refuses AQ, and its charge is refunded

    assert shop.settled(started)["status"] == "REJECTED"
    refund = next(s for s in shop.saga(started)["steps"] if (s["name"], s["action"]) == ("charge_payment",
                                                                                         "compensate"))
    assert (refund["handled_by"], canary.versions(started)) == ("payment@v2", PAYMENT_ON_V2)
    assert shop.settled(later)["status"] == "APPROVED"
    assert {s["handled_by"] for s in shop.saga(later)["steps"] if s["name"] == "charge_payment"} == {"payment@v1"}


def test_while_payment_v2_is_down_new_sagas_pin_payment_v1_a_cancellation_included(canary):
    """A rollback that leaves orders checked out on v2: their cancellation is a saga of its own, pinned when it
    starts, so it refunds on v1 instead of waiting for a v2 that is gone."""
    shop = canary.shop
    on_v2 = canary.checkout("FR")
    assert (canary.versions(on_v2), shop.settled(on_v2)["status"]) == (PAYMENT_ON_V2, "APPROVED")
    canary.payment_v2.send_signal(signal.SIGTERM)
    canary.payment_v2.wait(30)
    canary.logged("payment v2 fails its health check")

    order_id = canary.checkout("FR")
    assert canary.versions(order_id) == ON_V1
    assert shop.settled(order_id)["status"] == "APPROVED"

    cancellation = canary.cancel(on_v2)
    assert (cancellation.state, dict(cancellation.versions)) == ("SUCCEEDED", ON_V1)
    assert {s.handled_by for s in cancellation.steps if s.name == "refund_payment"} == {"payment@v1"}
    assert shop.settled(on_v2)["status"] == "CANCELLED"
    assert shop.ledger(on_v2) == [("charge", 2_500), ("refund", 2_500)]
