"""`sagashop up` on free ports, and a user's-eye client of it: what the tests place and what they check."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from sagashop.kit.settings import PARTS

ADDRESS = {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_shop(tmp: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], dict[str, str], Path]:
    env = {**os.environ, "SAGASHOP_DATA_DIR": str(tmp / "data"), "SAGASHOP_ADMIN_PASSWORD": "admin-secret-1",
           "SAGASHOP_ADMIN_EMAIL": "admin@example.com", "SAGASHOP_JWT_SECRET": "test-secret-" + uuid.uuid4().hex,
           "SAGASHOP_STEP_DEADLINE_SECONDS": "3", "SAGASHOP_SAGA_LEASE_SECONDS": "3",
           "SAGASHOP_PARK_AFTER_ATTEMPTS": "3", "SAGASHOP_FAULTS_SEED": "7", "SAGASHOP_BREAKER_RESET_SECONDS": "2",
           "SAGASHOP_TRACE_FILE": str(tmp / "spans.jsonl"), "SAGASHOP_LOG_FORMAT": "json"}  # read by test_tracing
    env.pop("SAGASHOP_DATABASE_URL", None)
    if database_url:
        env["SAGASHOP_DATABASE_URL"] = database_url
    for part, port in zip(PARTS, free_ports(len(PARTS)), strict=True):
        env[f"SAGASHOP_{part.upper()}_PORT"] = str(port)
    log = tmp / "up.log"
    process = subprocess.Popen([sys.executable, "-m", "tools.cli", "up"], env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)
    return process, env, log


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, within: float = 90) -> None:
    """Ready = the gateway's /readyz says 200 and `up` printed its banner (the catalog is seeded by then)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sagashop up exited:\n{log.read_text()[-3000:]}")
        if "sagashop is ready" in log.read_text(errors="replace"):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"sagashop up not ready in {within}s:\n{log.read_text()[-3000:]}")


def stop_shop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class Shop:
    def __init__(self, url: str, env: dict[str, str], pid: int, log: Path) -> None:
        self.url, self.env, self.pid, self.log = url, env, pid, log
        self.http = httpx.Client(base_url=url, timeout=30)
        self.admin = self.login(env["SAGASHOP_ADMIN_EMAIL"], env["SAGASHOP_ADMIN_PASSWORD"])

    def __enter__(self) -> "Shop":
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def login(self, email: str, password: str) -> dict[str, str]:
        reply = self.http.post("/v1/auth/token", json={"email": email, "password": password})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    def customer(self) -> dict[str, str]:
        """A new registered user's auth header."""
        email = f"u{uuid.uuid4().hex[:10]}@example.com"
        reply = self.http.post("/v1/users", json={"email": email, "password": "password-1", "name": "Ada"})
        assert reply.status_code == 201, reply.text
        return self.login(email, "password-1")

    def product(self, stock: int, price_cents: int = 2_500) -> str:
        """A new product of its own, so tests never share stock."""
        sku = f"T-{uuid.uuid4().hex[:8].upper()}"
        body = {"name": f"Test {sku}", "price_cents": price_cents, "currency": "EUR", "available": stock}
        reply = self.http.put(f"/v1/admin/products/{sku}", json=body, headers=self.admin)
        assert reply.status_code == 200, reply.text
        return sku

    def order_body(self, items: dict[str, int], token: str = "tok_ok", country: str = "FR") -> dict[str, Any]:
        return {"items": [{"sku": sku, "quantity": q} for sku, q in items.items()], "payment_token": token,
                "shipping_address": {**ADDRESS, "country": country}}

    def place(self, items: dict[str, int], *, user: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.http.post("/v1/orders", json=self.order_body(items, **kwargs), headers=user or self.customer())

    def place_order(self, items: dict[str, int], **kwargs: Any) -> dict[str, Any]:
        reply = self.place(items, **kwargs)
        assert reply.status_code == 201, reply.text
        return reply.json()  # type: ignore[no-any-return]

    def available(self, sku: str) -> int:
        return int(self.http.get(f"/v1/products/{sku}").json()["available"])

    def ledger(self, order_id: str) -> list[tuple[str, int]]:
        reply = self.http.get(f"/v1/admin/orders/{order_id}/payments", headers=self.admin)
        return [(line["kind"], line["amount_cents"]) for line in reply.json()["items"]]

    def net_charged(self, order_id: str) -> int:
        return sum(amount if kind == "charge" else -amount for kind, amount in self.ledger(order_id))

    def timeline(self, order_id: str) -> list[tuple[str, str]]:
        saga = self.http.get(f"/v1/orders/{order_id}/saga", headers=self.admin).json()
        return [(step["name"], step["action"]) for step in saga["steps"]]

    def settled(self, order_id: str, within: float = 60) -> dict[str, Any]:
        """The order once it is no longer PENDING."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            order = self.http.get(f"/v1/orders/{order_id}", headers=self.admin).json()
            if order["status"] != "PENDING":
                return order  # type: ignore[no-any-return]
            time.sleep(0.2)
        raise AssertionError(f"order {order_id} still PENDING after {within}s")

    def stock(self, sku: str) -> tuple[int, int, int]:
        """(available, reserved, sold) of a product."""
        p = self.http.get(f"/v1/admin/products/{sku}", headers=self.admin).json()
        return p["available"], p["reserved"], p["sold"]

    def shipments(self, order_id: str) -> list[str]:
        reply = self.http.get(f"/v1/admin/orders/{order_id}/shipments", headers=self.admin)
        return [s["tracking_number"] for s in reply.json()["items"]]

    def saga(self, order_id: str) -> dict[str, Any]:
        return self.http.get(f"/v1/orders/{order_id}/saga", headers=self.admin).json()  # type: ignore[no-any-return]

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        reply = self.http.put("/v1/admin/faults", json=rule, headers=self.admin)
        assert reply.status_code == 200, reply.text
        return reply.json()  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        assert self.http.delete("/v1/admin/faults", headers=self.admin).status_code == 200

    def part(self, name: str) -> Any:
        """The running process of one part under `sagashop up`."""
        import psutil

        for child in psutil.Process(self.pid).children():
            if child.cmdline()[-2:] == ["serve", name]:
                return child
        raise AssertionError(f"no running {name} under sagashop up")

    def ready_again(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:  # the gateway itself is (re)starting
                pass
            time.sleep(0.2)
        raise AssertionError(f"the shop is not ready again after {within}s")

    def place_until_answered(self, body: dict[str, Any], user: dict[str, str], key: str,
                             within: float = 60) -> dict[str, Any]:
        """POSTs the order with an Idempotency-Key, again and again while the shop answers 503 (an orchestrator
        down), as a careful client does; returns the order."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                reply = self.http.post("/v1/orders", json=body, headers={**user, "Idempotency-Key": key,
                                                                          "Prefer": "wait=0"})
                if reply.status_code in (200, 201, 202):
                    return reply.json()  # type: ignore[no-any-return]
                assert reply.status_code == 503, reply.text
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"no answer to the order in {within}s")

    def assert_conserved(self, order: dict[str, Any], sku: str, quantity: int, stock: int) -> None:
        """Nothing lost, nothing twice: stock all accounted for; an approved order charged its total once and
        shipped once; any other order charged nothing in the end and shipped nothing."""
        available, reserved, sold = self.stock(sku)
        assert (available + reserved + sold, reserved) == (stock, 0)
        approved = order["status"] == "APPROVED"
        assert sold == (quantity if approved else 0)
        assert self.net_charged(order["id"]) == (order["total_cents"] if approved else 0)
        assert len(self.shipments(order["id"])) == (1 if approved else 0)

    def spawn(self, part: str, log: Any, **env: str) -> tuple[subprocess.Popen[bytes], int]:
        """Another `sagashop serve PART` process beside the shop (same databases), on a free port; once it serves."""
        port = free_ports(1)[0]
        overrides = {f"SAGASHOP_{part.upper()}_PORT": str(port), **env}
        process = subprocess.Popen([sys.executable, "-m", "tools.cli", "serve", part], env={**self.env, **overrides},
                                   stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not serving(port):
            assert time.monotonic() < deadline and process.poll() is None, f"the extra {part} did not start"
            time.sleep(0.2)
        return process, port
