"""The gateway's guard rails, through real processes: the shared shop's gateway with its defaults, and second
gateways (`sagashop serve gateway`) with low limits, or with backends that are down, beside it."""

import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import pytest

from sagashop.kit.settings import SERVICES
from sagashop.v1 import faults_pb2, faults_pb2_grpc
from tests.shop import Shop, spawn, stop_shop
from tools.local.parts import free_ports

PROBLEM = "application/problem+json"
LOW_LIMITS = {"RATE_LIMIT_USER_PER_SECOND": 2, "RATE_LIMIT_USER_BURST": 5, "RATE_LIMIT_ADDRESS_PER_SECOND": 5,
              "RATE_LIMIT_ADDRESS_BURST": 10, "IDEMPOTENCY_WAIT_SECONDS": 0.3, "CORS_ORIGINS": "https://shop.example",
              "RATE_LIMIT_SIGN_IN_ADDRESS_PER_MINUTE": 6, "RATE_LIMIT_SIGN_IN_ACCOUNT_PER_MINUTE": 3}


def assert_problem(reply: httpx.Response, status: int, code: str) -> None:
    assert (reply.status_code, reply.headers["content-type"]) == (status, PROBLEM), reply.text
    assert reply.json()["code"] == code
    assert "127.0.0.1" not in reply.text and "Traceback" not in reply.text


@contextmanager
def gateway(shop: Shop, log: Path, **settings: object) -> Iterator[str]:
    """A second gateway on a free port: the shop's settings (its backends, its JWT secret) but for `settings`."""
    process, port = spawn("gateway", shop.env, log.open("wb"), **{f"SAGASHOP_{k}": str(v) for k, v in settings.items()})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_shop(process)


def client(url: str, address: str, **headers: str) -> httpx.Client:
    """A client seen from `address` (the gateway believes X-Forwarded-For from 127.0.0.1, as from a proxy)."""
    return httpx.Client(base_url=url, headers={"X-Forwarded-For": address, **headers}, timeout=30)


@pytest.fixture(scope="module")
def limited(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with gateway(shop, tmp_path_factory.mktemp("limited") / "gateway.log", **LOW_LIMITS) as url:
        yield url


@pytest.fixture(scope="module")
def down(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway whose backends are all down: closed ports, and for the orchestrator one that never answers (only
    the circuit test calls it through its breaker)."""
    if shop.env.get("SAGASHOP_DATABASE_URL"):
        pytest.skip("no database is involved: the SQLite run covers it")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections are accepted by the kernel and never answered
        ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        ports["orchestrator"] = silent.getsockname()[1]
        with gateway(shop, tmp_path_factory.mktemp("down") / "gateway.log", BREAKER_FAIL_MAX=2,
                     BREAKER_RESET_SECONDS=60, **{f"{name.upper()}_PORT": port for name, port in ports.items()}) as url:
            yield url


def test_every_answer_carries_security_headers_and_a_request_id(shop):
    for reply in (shop.http.get("/healthz"), shop.http.get("/v1/products"), shop.http.get("/v1/nope")):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert (reply.headers["x-frame-options"], reply.headers["referrer-policy"]) == ("DENY", "no-referrer")
        assert reply.headers["content-security-policy"].startswith("default-src 'none'")
        assert reply.headers["cache-control"] == "no-store"
        assert len(reply.headers["x-request-id"]) == 32
    assert shop.http.get("/healthz", headers={"X-Request-Id": "trace-42"}).headers["x-request-id"] == "trace-42"
    assert shop.http.get("/healthz", headers={"X-Request-Id": "<b>hi</b>"}).headers["x-request-id"] != "<b>hi</b>"
    assert "https://cdn.jsdelivr.net" in shop.http.get("/docs").headers["content-security-policy"]
    assert "access-control-allow-origin" not in shop.http.get("/v1/products", headers={"Origin": "https://x.io"}).headers


def test_cross_origin_calls_are_allowed_from_the_configured_origins_only(limited):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with client(limited, "198.51.100.1") as http:
        allowed = http.options("/v1/orders", headers={"Origin": "https://shop.example", **preflight})
        refused = http.options("/v1/orders", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-origin" not in refused.headers


def test_bodies_too_large_or_not_json_are_refused_as_problems(shop):
    user = shop.customer()
    big = b'{"items": [' + b" " * 70_000 + b"]}"
    json_type = {"Content-Type": "application/json"}
    assert_problem(shop.http.post("/v1/orders", content=big, headers={**user, **json_type}), 413, "payload_too_large")
    streamed = shop.http.post("/v1/orders", content=iter([big[:40_000], big[40_000:]]), headers={**user, **json_type})
    assert_problem(streamed, 413, "payload_too_large")
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**user, **({"Content-Type": content_type} if content_type else {})}
        assert_problem(shop.http.post("/v1/orders", content=b"{}", headers=headers), 415, "unsupported_media_type")
    for body in (b"{not json", b"[]", b'"an order"', b"null"):
        assert_problem(shop.http.post("/v1/orders", content=body, headers={**user, **json_type}), 422,
                       "validation_error")


def test_wrong_query_and_path_parameters_are_refused_as_problems(shop):
    assert_problem(shop.http.get("/v1/admin/sagas?limit=0", headers=shop.admin), 422, "validation_error")
    assert_problem(shop.http.get("/v1/admin/sagas?state=SOMEHOW", headers=shop.admin), 422, "validation_error")
    assert_problem(shop.http.get("/v1/orders/not%20an%20id", headers=shop.admin), 422, "validation_error")
    assert_problem(shop.http.get(f"/v1/products/{'A' * 65}"), 422, "validation_error")
    assert_problem(shop.http.get("/v1/orders/0123456789abcdef", headers=shop.admin), 404, "not_found")
    assert_problem(shop.http.post("/v1/admin/sagas/x/explode", headers=shop.admin), 422, "validation_error")


def test_parts_served_bare_answer_no_fault_injection(shop, tmp_path):
    bare = {k: v for k, v in shop.env.items() if k != "SAGASHOP_FAULTS_ENABLED"}  # a bare `sagashop serve PART`
    with (tmp_path / "bare.log").open("wb") as log:
        gateway_process, gateway_port = spawn("gateway", bare, log)
        payment_process, payment_port = spawn("payment", bare, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway_port}", timeout=30) as http:
            assert_problem(http.get("/v1/admin/faults", headers=shop.admin), 404, "not_found")
        with grpc.insecure_channel(f"127.0.0.1:{payment_port}") as channel, pytest.raises(grpc.RpcError) as refused:
            faults_pb2_grpc.FaultServiceStub(channel).AddFault(faults_pb2.FaultRule(
                method="Charge", error="UNAVAILABLE", rate=1.0), timeout=10, metadata=shop.signed)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        stop_shop(gateway_process)
        stop_shop(payment_process)


def test_a_fault_rule_count_beyond_what_the_rule_can_hold_is_refused_as_a_problem(shop):
    rule = {"service": "payment", "method": "Charge", "error": "UNAVAILABLE", "rate": 0.0}  # never fires
    assert_problem(shop.http.put("/v1/admin/faults", json={**rule, "count": 2**31}, headers=shop.admin), 422,
                   "validation_error")
    try:
        taken = shop.http.put("/v1/admin/faults", json={**rule, "count": 2**31 - 1}, headers=shop.admin)
        assert (taken.status_code, taken.json()["count"]) == (200, 2**31 - 1)
    finally:
        shop.clear_faults()


def test_a_user_over_the_rate_limit_is_answered_429_and_served_again_after_retry_after(shop, limited):
    ada, bob = shop.customer(), shop.customer()
    with client(limited, "198.51.100.2") as http:
        assert [http.get("/v1/orders", headers=ada).status_code for _ in range(5)] == [200] * 5
        refused = http.get("/v1/orders", headers=ada)
        assert_problem(refused, 429, "rate_limited")
        assert http.get("/v1/orders", headers=bob).status_code == 200  # each user has a bucket of their own
        time.sleep(int(refused.headers["retry-after"]))
        assert http.get("/v1/orders", headers=ada).status_code == 200


def test_an_account_places_only_so_many_orders_an_hour(shop, tmp_path):
    ada, bob, sku = shop.customer(), shop.customer(), shop.product(stock=10)
    with gateway(shop, tmp_path / "gateway.log", RATE_LIMIT_ORDERS_PER_HOUR=2) as url, \
            client(url, "198.51.100.20") as http:
        placed = [http.post("/v1/orders", json=shop.order_body({sku: 1}), headers=ada) for _ in range(3)]
        assert [p.status_code for p in placed] == [201, 201, 429]
        assert_problem(placed[-1], 429, "rate_limited")
        assert 1_000 < int(placed[-1].headers["retry-after"]) <= 1_800  # 2 an hour: the next one in half an hour
        assert http.get("/v1/orders", headers=ada).status_code == 200  # reading is not placing
        assert http.post("/v1/orders", json=shop.order_body({sku: 1}), headers=bob).status_code == 201
    assert shop.stock(sku) == (7, 0, 3)


def test_password_guessing_is_slowed_per_account_from_any_address_and_per_address(shop, limited):
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    assert shop.http.post("/v1/users", json={"email": email, "password": "right-password-1", "name": "V"}
                          ).status_code == 201  # through the shop's own gateway
    guesses = []
    for n in range(4):  # each from an address of its own
        with client(limited, f"203.0.113.{10 + n}") as http:
            guesses.append(http.post("/v1/auth/token", json={"email": email.upper(), "password": f"guess-{n}"}))
    assert [g.status_code for g in guesses] == [401, 401, 401, 429]
    assert_problem(guesses[-1], 429, "rate_limited")
    assert 1 <= int(guesses[-1].headers["retry-after"]) <= 20  # 3 a minute: the next in 20 s at most

    with client(limited, "203.0.113.50") as http:  # one address, many accounts
        answers = [http.post("/v1/auth/token", json={"email": f"nobody-{n}@example.com", "password": "x"})
                   for n in range(7)]
    assert [a.status_code for a in answers] == [401] * 6 + [429]


def test_a_client_address_over_the_rate_limit_is_answered_429_but_never_on_operations_endpoints(limited):
    with client(limited, "198.51.100.3") as http, client(limited, "198.51.100.4") as other:
        answers = [http.get("/v1/products").status_code for _ in range(15)]
        assert answers[:10] == [200] * 10 and 429 in answers
        assert_problem(http.get("/v1/products"), 429, "rate_limited")
        assert {http.get(path).status_code for path in ("/healthz", "/readyz", "/metrics") for _ in range(5)} == {200}
        assert other.get("/v1/products").status_code == 200


def test_concurrent_duplicates_of_a_keyed_order_place_it_once(shop):
    sku = shop.product(stock=5)
    user, body = {**shop.customer(), "Idempotency-Key": "twins"}, shop.order_body({sku: 1})
    with ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda _: shop.http.post("/v1/orders", json=body, headers=user), range(5)))

    placed = [r for r in replies if r.status_code in (200, 201)]
    assert sorted(r.status_code for r in placed)[-1:] == [201] and len({r.json()["id"] for r in placed}) == 1
    for reply in replies:
        if reply not in placed:
            assert_problem(reply, 409, "idempotency_in_progress")
    assert shop.ledger(placed[0].json()["id"]) == [("charge", 2_500)]
    assert shop.available(sku) == 4


def test_a_repeat_while_the_first_request_is_in_flight_is_told_to_come_back(shop, limited):
    sku, user = shop.product(stock=5), {**shop.customer(), "Idempotency-Key": "slow-1"}
    shop.add_fault(service="payment", method="Charge", delay_ms=1_500, count=1)  # within the 2 s attempt timeout
    try:
        with client(limited, "198.51.100.5", **user) as http, ThreadPoolExecutor(1) as pool:
            first = pool.submit(http.post, "/v1/orders", json=shop.order_body({sku: 1}))
            time.sleep(0.5)
            repeat = http.post("/v1/orders", json=shop.order_body({sku: 1}))
            assert_problem(repeat, 409, "idempotency_in_progress")
            assert repeat.headers["retry-after"] == "1"
            assert (first.result().status_code, first.result().json()["status"]) == (201, "APPROVED")
            again = http.post("/v1/orders", json=shop.order_body({sku: 1}))
    finally:
        shop.clear_faults()
    assert (again.status_code, again.json()["id"]) == (200, first.result().json()["id"])


def test_backends_that_are_down_answer_503_with_retry_after_within_seconds(shop, down):
    with client(down, "198.51.100.6") as http:
        for call in (lambda: http.get("/v1/products"), lambda: http.get("/v1/orders", headers=shop.admin),
                     lambda: http.post("/v1/auth/token", json={"email": "a@example.com", "password": "password-1"})):
            started = time.monotonic()
            reply = call()
            assert time.monotonic() - started < 5
            assert_problem(reply, 503, "service_unavailable")
            assert reply.headers["retry-after"] == "1"
        assert_problem(http.get("/readyz"), 503, "not_ready")


def test_after_a_few_timeouts_the_open_circuit_answers_at_once(shop, down):
    with client(down, "198.51.100.7", **shop.admin) as http:
        for _ in range(2):  # each waits out its deadline on the silent orchestrator, and counts
            assert_problem(http.post("/v1/admin/sagas/s-1/retry"), 503, "service_unavailable")
        started = time.monotonic()
        assert_problem(http.post("/v1/admin/sagas/s-1/retry"), 503, "service_unavailable")
        assert time.monotonic() - started < 0.5
        assert ('sagashop_circuit_breaker_state{dependency="orchestrator",state="open",version="v1"} 1.0'
                in http.get("/metrics").text)
