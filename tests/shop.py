"""`sagashop up` on free ports, and a user's-eye view of it for the tests: the shop's own client (tools.shopclient)
driven from the tests' blocking code, the shop's processes, and `http` for tests that look at the raw answers."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from sagashop.events.streams import Streams
from sagashop.kit.callers import credential
from sagashop.kit.settings import PARTS
from tools.local.parts import free_port, free_ports, popen
from tools.shopclient import ShopClient, order_body

T = TypeVar("T")
CAMPAIGN_WITHIN = 270.0  # under the suite's 300 s per test: a campaign still running then fails with what it said


def start_shop(tmp: Path, database_url: str | None,
               nats_url: str | None = None) -> tuple[subprocess.Popen[bytes], dict[str, str], Path]:
    """`sagashop up` on `database_url` (None: SQLite files) and the NATS server at `nats_url` (None: its own, on a
    free port)."""
    env = {**os.environ, "SAGASHOP_DATA_DIR": str(tmp / "data"), "SAGASHOP_ADMIN_PASSWORD": "admin-secret-1",
           "SAGASHOP_ADMIN_EMAIL": "admin@example.com", "SAGASHOP_JWT_SECRET": "test-secret-" + uuid.uuid4().hex,
           "SAGASHOP_STEP_DEADLINE_SECONDS": "3", "SAGASHOP_SAGA_LEASE_SECONDS": "3",
           "SAGASHOP_PARK_AFTER_ATTEMPTS": "3", "SAGASHOP_FAULTS_SEED": "7", "SAGASHOP_BREAKER_RESET_SECONDS": "2",
           "SAGASHOP_EVENT_ACK_WAIT_SECONDS": "5",  # a consumer killed mid-batch: its events come again soon
           "SAGASHOP_TRACE_FILE": str(tmp / "spans.jsonl"), "SAGASHOP_LOG_FORMAT": "json",  # read by test_tracing
           # the suite signs up hundreds of customers from one address; test_gateway_limits.py tests these limits
           "SAGASHOP_RATE_LIMIT_SIGN_IN_ADDRESS_PER_MINUTE": "100000",
           "SAGASHOP_RATE_LIMIT_SIGN_IN_ACCOUNT_PER_MINUTE": "100000",
           "SAGASHOP_FAULTS_ENABLED": "true",  # as under `sagashop up`, and for the extra parts tests spawn
           "SAGASHOP_INTERNAL_SECRET": "test-internal-" + uuid.uuid4().hex}  # so that extra parts share it
    env.pop("SAGASHOP_DATABASE_URL", None)
    env.pop("SAGASHOP_NATS_URL", None)
    env.pop("SAGASHOP_SMTP_URL", None)
    if database_url:
        env["SAGASHOP_DATABASE_URL"] = database_url
    if nats_url:  # a server other shops share: streams of this shop's own (`delete_streams` after)
        env["SAGASHOP_NATS_URL"] = nats_url
        env["SAGASHOP_EVENTS_NAME"] = f"shop{uuid.uuid4().hex[:10]}"
    # up's own NATS server (if it runs one) and SMTP sink on ports of their own too
    *ports, env["SAGASHOP_NATS_PORT"], env["SAGASHOP_SMTP_PORT"] = map(str, free_ports(len(PARTS) + 2))
    for part, port in zip(PARTS, ports, strict=True):
        env[f"SAGASHOP_{part.upper()}_PORT"] = port
    log = tmp / "up.log"
    process = popen("up", env=env, program=("tools.cli",), stdout=log.open("wb"), stderr=subprocess.STDOUT)
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


def answering(part: str, port: int) -> bool:
    """Whether the part on `port` answers its health check (the gateway's /healthz, a gRPC part's health)."""
    if part == "gateway":
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def spawn(part: str, env: dict[str, str], log: IO[bytes], *, port: int | None = None,
          **overrides: str) -> tuple[subprocess.Popen[bytes], int]:
    """`sagashop serve PART` with `env` but for its port (`port`, or a free one) and `overrides`; once it answers."""
    port = port or free_port()
    process = popen(part, env={**env, f"SAGASHOP_{part.upper()}_PORT": str(port), **overrides}, stdout=log,
                    stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not answering(part, port):
        if time.monotonic() > deadline or process.poll() is not None:
            stop_shop(process)
            raise AssertionError(f"the extra {part} did not start; see {getattr(log, 'name', 'its log')}")
        time.sleep(0.2)
    return process, port


class Shop:
    def __init__(self, url: str, env: dict[str, str], pid: int, log: Path) -> None:
        self.url, self.env, self.pid, self.log = url, env, pid, log
        if "SAGASHOP_NATS_URL" not in env:  # up's own server, whose URL (this run's password in it) the parts got
            self.env = {**env, "SAGASHOP_NATS_URL": self.part("gateway").environ()["SAGASHOP_NATS_URL"]}
        self.http = httpx.Client(base_url=url, timeout=30)  # the raw answers, for tests of the wire
        self.loop = asyncio.new_event_loop()  # the client's, on a thread of its own: the tests block
        threading.Thread(target=self.loop.run_forever, name="shop-client", daemon=True).start()
        self.client = ShopClient(url)
        self.run(self.client.sign_in_admin(env["SAGASHOP_ADMIN_EMAIL"], env["SAGASHOP_ADMIN_PASSWORD"]))
        self.admin = self.client.admin
        self.signed = credential(env["SAGASHOP_INTERNAL_SECRET"], "test")  # metadata of a direct gRPC call

    def __enter__(self) -> "Shop":
        return self

    def __exit__(self, *_: object) -> None:
        self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.http.close()

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """What one of the client's calls returns, awaited on the client's loop."""
        return asyncio.run_coroutine_threadsafe(call, self.loop).result()

    def login(self, email: str, password: str) -> dict[str, str]:
        return self.run(self.client.sign_in(email, password))

    def customer(self) -> dict[str, str]:
        """A new registered user's auth header."""
        return self.run(self.client.sign_up("Ada")).headers

    def product(self, stock: int, price_cents: int = 2_500) -> str:
        """A new product of its own, so tests never share stock."""
        sku = f"T-{uuid.uuid4().hex[:8].upper()}"
        self.run(self.client.put_product(sku, stock, price_cents, name=f"Test {sku}"))
        return sku

    def order_body(self, items: dict[str, int], token: str = "tok_ok", country: str = "FR") -> dict[str, Any]:
        return order_body(items, token, country)

    def place(self, items: dict[str, int], *, user: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.run(self.client.place(user or self.customer(), order_body(items, **kwargs)))

    def place_order(self, items: dict[str, int], **kwargs: Any) -> dict[str, Any]:
        reply = self.place(items, **kwargs)
        assert reply.status_code == 201, reply.text
        return reply.json()  # type: ignore[no-any-return]

    def available(self, sku: str) -> int:
        return int(self.run(self.client.product(sku))["available"])

    def ledger(self, order_id: str) -> list[tuple[str, int]]:
        return [(line["kind"], line["amount_cents"]) for line in self.run(self.client.ledger(order_id))]

    def net_charged(self, order_id: str) -> int:
        return self.run(self.client.net_charged(order_id))

    def saga(self, order_id: str) -> dict[str, Any]:
        return self.run(self.client.saga(order_id))  # type: ignore[no-any-return]

    def timeline(self, order_id: str) -> list[tuple[str, str]]:
        return [(step["name"], step["action"]) for step in self.saga(order_id)["steps"]]

    def settled(self, order_id: str, within: float = 60) -> dict[str, Any]:
        """The order once it is no longer PENDING."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            order = self.run(self.client.order(order_id))
            if order["status"] != "PENDING":
                return order  # type: ignore[no-any-return]
            time.sleep(0.2)
        raise AssertionError(f"order {order_id} still PENDING after {within}s")

    def stock(self, sku: str) -> tuple[int, int, int]:
        """(available, reserved, sold) of a product."""
        p = self.run(self.client.product(sku, admin=True))
        return p["available"], p["reserved"], p["sold"]

    def shipments(self, order_id: str) -> list[str]:
        return [s["tracking_number"] for s in self.run(self.client.shipments(order_id))]

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        return self.run(self.client.add_fault(**rule))  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        self.run(self.client.clear_faults())

    def part(self, name: str) -> Any:
        """The running process of one part under `sagashop up`."""
        import psutil

        for child in psutil.Process(self.pid).children():
            if child.cmdline()[-2:] == ["serve", name]:
                return child
        raise AssertionError(f"no running {name} under sagashop up")

    def ready_again(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while not self.run(self.client.ready()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the shop is not ready again after {within}s")
            time.sleep(0.2)

    def place_until_answered(self, body: dict[str, Any], user: dict[str, str], key: str,
                             within: float = 60) -> dict[str, Any]:
        """POSTs the order with an Idempotency-Key, again and again while the shop answers 503 (an orchestrator
        down), as a careful client does; returns the order."""
        patient = ShopClient(self.url, outlast=within)
        try:
            reply = self.run(patient.place(user, body, wait=0, key=key))
        finally:
            self.run(patient.close())
        assert reply.status_code in (200, 201, 202), reply.text
        return reply.json()  # type: ignore[no-any-return]

    def assert_conserved(self, order: dict[str, Any], sku: str, quantity: int, stock: int) -> None:
        """Nothing lost, nothing twice: stock all accounted for; an approved order charged its total once and
        shipped once; any other order charged nothing in the end and shipped nothing."""
        available, reserved, sold = self.stock(sku)
        assert (available + reserved + sold, reserved) == (stock, 0)
        approved = order["status"] == "APPROVED"
        assert sold == (quantity if approved else 0)
        assert self.net_charged(order["id"]) == (order["total_cents"] if approved else 0)
        assert len(self.shipments(order["id"])) == (1 if approved else 0)

    def chaos(self, *options: str) -> subprocess.CompletedProcess[str]:
        """`sagashop chaos` against the shop as a user runs it. One still running after CAMPAIGN_WITHIN seconds is
        interrupted (it stops its replicas and clears its faults, as on Ctrl-C) and the test fails with what it
        printed and the end of the shop's log: where it stood."""
        command = [sys.executable, "-m", "tools.cli", "chaos", "--url", self.url, *options]
        with subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
            try:
                out, err = run.communicate(timeout=CAMPAIGN_WITHIN)
            except subprocess.TimeoutExpired:
                run.send_signal(signal.SIGINT)
                try:
                    out, err = run.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    run.kill()
                    out, err = run.communicate()
                raise AssertionError(
                    f"the campaign ran past {CAMPAIGN_WITHIN:g} s; it printed:\n{out[-3000:]}{err[-3000:]}\n"
                    f"the end of the shop's log:\n{self.log.read_text(errors='replace')[-8000:]}") from None
        return subprocess.CompletedProcess(command, run.returncode, out, err)

    def spawn(self, part: str, log: Any, **env: str) -> tuple[subprocess.Popen[bytes], int]:
        """Another `sagashop serve PART` process beside the shop (same databases), on a free port; once it serves."""
        return spawn(part, self.env, log, **env)


async def delete_streams(nats_url: str, events_name: str) -> None:
    """Deletes the streams of a shop that used the shared NATS server at `nats_url` (its SAGASHOP_EVENTS_NAME)."""
    import nats
    from nats.js.errors import NotFoundError

    names = Streams(events_name)
    nc = await nats.connect(nats_url, connect_timeout=2)
    try:
        js = nc.jetstream()
        for stream in (names.events, names.dead_letters, names.replays):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)
    finally:
        await nc.close()
