"""Two orchestrators on one database: one is killed mid-run, and every saga still finishes exactly once."""

import os
import signal
import subprocess
import sys
import time
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.shop import free_ports


def serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def start_replica(shop, log) -> tuple[subprocess.Popen, int]:
    port = free_ports(1)[0]
    env = {**shop.env, "SAGASHOP_ORCHESTRATOR_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "orchestrator"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not serving(port):
        assert time.monotonic() < deadline and process.poll() is None, "the second orchestrator did not start"
        time.sleep(0.2)
    return process, port


def test_sagas_of_a_killed_orchestrator_finish_once_on_the_other(faulty, tmp_path):
    shop = faulty
    with (tmp_path / "replica.log").open("wb") as log:
        replica, _ = start_replica(shop, log)
        try:
            sku = shop.product(stock=20)
            shop.add_fault(service="payment", method="Charge", delay_ms=2_000, count=6)
            placed = [shop.place_until_answered(shop.order_body({sku: 1}), shop.customer(), uuid.uuid4().hex)
                      for _ in range(6)]
            victim = shop.part("orchestrator")
            os.kill(victim.pid, signal.SIGKILL)  # mid-run: its sagas wait in Charge's delay

            orders = [shop.settled(p["id"]) for p in placed]
        finally:
            replica.send_signal(signal.SIGTERM)
            replica.wait(30)

    assert [o["status"] for o in orders] == ["APPROVED"] * 6
    assert [shop.ledger(o["id"]) for o in orders] == [[("charge", 2_500)]] * 6
    assert shop.stock(sku) == (14, 0, 6)
