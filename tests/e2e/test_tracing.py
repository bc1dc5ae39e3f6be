"""Observability of the running shop: one trace per checkout across every process, metrics that move with what
happened, and log lines that name their saga's trace."""

import json
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sagashop.kit.settings import EVENT_CONSUMERS
from tools.local.up import METRICS_OFFSET

REASONS = ("out_of_stock", "payment_declined", "shipping_rejected")
ON_V1 = {f"{part}_version": "v1" for part in ("order", "inventory", "payment", "shipping")}  # a saga's pins
CHECKOUT_PARTS = {f"sagashop-{p}" for p in ("gateway", "orchestrator", "order", "inventory", "payment", "shipping")}
CONSUMERS = {f"sagashop-{p}" for p in EVENT_CONSUMERS}


def spans_of(shop) -> list[dict[str, Any]]:
    """The spans every process of the shop wrote to its trace file (SAGASHOP_TRACE_FILE), one JSON line each."""
    return [json.loads(line) for line in Path(shop.env["SAGASHOP_TRACE_FILE"]).read_text().splitlines()]


def trace_of(shop, order_id: str, within: float = 10) -> list[dict[str, Any]]:
    """Every span of the trace holding the order's saga, once the gateway's request span (the last to end) is
    there."""
    deadline = time.monotonic() + within
    while True:
        spans = spans_of(shop)
        ids = {s["context"]["trace_id"] for s in spans if s["attributes"].get("order.id") == order_id}
        found = [s for s in spans if s["context"]["trace_id"] in ids]
        if len(ids) == 1 and any(s["name"] == "POST /v1/orders" and not s["parent_id"] for s in found):
            return found
        assert time.monotonic() < deadline, f"no one trace of order {order_id}: {len(ids)} traces"
        time.sleep(0.2)


def part(span: dict[str, Any]) -> str:
    return str(span["resource"]["attributes"]["service.name"])


def steps(spans: list[dict[str, Any]]) -> list[tuple[str, str]]:
    attempts = sorted((s for s in spans if "saga.step" in s["attributes"]), key=lambda s: s["start_time"])
    return [(s["attributes"]["saga.step"], s["attributes"]["saga.action"]) for s in attempts]


def test_a_checkout_is_one_trace_from_the_gateway_through_every_part_it_involves_down_to_the_sql(shop):
    reply = shop.place({shop.product(stock=2): 1})
    order = reply.json()
    spans = trace_of(shop, order["id"])

    # the gateway checks tokens itself: no call to user; the consumers join the trace as its events reach them
    assert CHECKOUT_PARTS <= {part(s) for s in spans} <= CHECKOUT_PARTS | CONSUMERS
    assert reply.headers["traceparent"].split("-")[1] == spans[0]["context"]["trace_id"].removeprefix("0x")
    assert reply.headers["x-request-id"]
    assert steps(spans) == [(name, "execute") for name in ("create_order", "reserve_stock", "charge_payment",
                                                            "commit_stock", "create_shipment", "approve_order")]
    run = next(s for s in spans if s["name"] == "saga checkout")["attributes"]
    assert (run["saga.id"], run["order.id"], run["saga.name"], run["saga.payment_version"]) == (
        order["id"], order["id"], "checkout", "v1")
    payment = [s["attributes"] for s in spans if part(s) == "sagashop-payment"]
    assert any(a.get("rpc.method") == "Charge" for a in payment)
    assert any("INSERT INTO ledger" in str(a.get("db.statement", "")) for a in payment)  # the charge's SQL


def test_a_checkouts_events_are_applied_by_each_consumer_in_the_checkouts_trace(shop):
    """The relay carries the trace in each message's `traceparent`: a consumer applies the event in a span whose
    parent is the span of the service that made it."""
    order = shop.place({shop.product(stock=2): 1}).json()
    trace_id = trace_of(shop, order["id"])[0]["context"]["trace_id"]
    approved = {("sagashop-reporting", "consume order.approved"), ("sagashop-notification", "consume order.approved")}
    wanted = {*approved, ("sagashop-reporting", "consume payment.charged")}  # (each relay publishes on its own)
    deadline = time.monotonic() + 30  # a relay's round, a consumer's batch, a span export: on a busy machine
    while True:
        spans = [s for s in spans_of(shop) if s["context"]["trace_id"] == trace_id]
        consumed = {(part(s), s["name"]) for s in spans if s["name"].startswith("consume ")}
        if wanted <= consumed or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert wanted <= consumed
    by_id = {s["context"]["span_id"]: s for s in spans}
    for span in (s for s in spans if (part(s), s["name"]) in approved):
        assert span["kind"] == "SpanKind.CONSUMER"
        assert part(by_id[span["parent_id"]]) == "sagashop-order"  # the ApproveOrder call that made the event


def test_signing_in_is_one_trace_through_the_user_service(shop):
    reply = shop.http.post("/v1/auth/token", json={"email": shop.env["SAGASHOP_ADMIN_EMAIL"],
                                                   "password": shop.env["SAGASHOP_ADMIN_PASSWORD"]})
    trace_id = "0x" + reply.headers["traceparent"].split("-")[1]
    time.sleep(0.5)  # the request span ends just after the answer

    spans = [s for s in spans_of(shop) if s["context"]["trace_id"] == trace_id]
    assert {part(s) for s in spans} == {"sagashop-gateway", "sagashop-user"}
    assert {s["name"] for s in spans} >= {"POST /v1/auth/token", "/sagashop.v1.UserService/Authenticate"}


def test_a_compensated_checkout_traces_each_undo_after_the_refusal(shop):
    order = shop.place_order({shop.product(stock=2): 1}, country="AQ")
    spans = trace_of(shop, order["id"])

    assert steps(spans)[3:] == [("commit_stock", "execute"), ("create_shipment", "execute"),
                                ("create_shipment", "compensate"),
                                ("charge_payment", "compensate"), ("reserve_stock", "compensate"),
                                ("reject_order", "execute")]
    refused = next(s for s in spans if s["attributes"].get("saga.step") == "create_shipment")
    assert (refused["attributes"]["saga.error_code"], refused["status"]["status_code"]) == ("shipping_rejected",
                                                                                           "ERROR")


def metrics_of(shop, name: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value, from a part's metrics endpoint (the gateway's /metrics, or port + 1000)."""
    url = f"{shop.url}/metrics" if name == "gateway" else \
        f"http://127.0.0.1:{int(shop.env[f'SAGASHOP_{name.upper()}_PORT']) + METRICS_OFFSET}/metrics"
    text = httpx.get(url, timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def moved(before: dict, after: dict) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def at_rest(shop, within: float = 30) -> None:
    """No saga runs in the orchestrator (earlier tests' sagas have ended)."""
    deadline = time.monotonic() + within
    while any(v for (name, _), v in metrics_of(shop, "orchestrator").items() if name == "sagashop_saga_in_flight"):
        assert time.monotonic() < deadline, "sagas still in flight"
        time.sleep(0.2)


def series(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset({**labels, "version": "v1"}.items())


def test_the_metrics_count_each_outcome_by_reason_and_the_money_and_stock_moved(shop):
    sku = shop.product(stock=5, price_cents=1_000)
    parts = ("gateway", "orchestrator", "payment", "inventory")
    at_rest(shop)
    before = {p: metrics_of(shop, p) for p in parts}
    assert shop.place_order({sku: 2})["status"] == "APPROVED"
    rejected = [shop.place_order({sku: 9}), shop.place_order({sku: 1}, token="tok_declined"),
                shop.place_order({sku: 1}, country="AQ")]
    assert shop.place({"NO-SUCH-SKU": 1}).status_code == 422  # refused before any saga
    assert [order["failure_reason"] for order in rejected] == list(REASONS)
    at_rest(shop)
    delta = {p: moved(before[p], metrics_of(shop, p)) for p in parts}

    completed = {k: v for k, v in delta["orchestrator"].items() if k[0] == "sagashop_saga_completed_total"}
    assert completed == {series("sagashop_saga_completed_total", saga="checkout", outcome="succeeded",
                                failure_reason="", **ON_V1): 1,
                         **{series("sagashop_saga_completed_total", saga="checkout", outcome="compensated",
                                   failure_reason=reason, **ON_V1): 1 for reason in REASONS}}
    assert delta["orchestrator"][series("sagashop_saga_started_total", saga="checkout", **ON_V1)] == 4
    assert delta["gateway"][series("sagashop_http_requests_total", route="/v1/orders", method="POST",
                                   status="201")] == 4
    assert delta["gateway"][series("sagashop_http_requests_total", route="/v1/orders", method="POST",
                                   status="422")] == 1
    assert delta["payment"][series("sagashop_payment_charged_cents_total", currency="EUR")] == 2_000 + 1_000
    assert delta["payment"][series("sagashop_payment_refunded_cents_total", currency="EUR")] == 1_000
    assert delta["payment"][series("sagashop_grpc_server_handled_total", service="sagashop.v1.PaymentService",
                                   method="Charge", code="FAILED_PRECONDITION")] == 1
    units = {dict(labels)["movement"]: value for (name, labels), value in delta["inventory"].items()
             if name == "sagashop_inventory_units_total"}
    # the AQ order's unit was committed (sold) before its shipment was refused, then released with the declined one's
    assert units == {"reserved": 4, "committed": 3, "released": 2}


def test_the_log_lines_of_a_saga_carry_its_saga_order_and_trace_ids(shop):
    order = shop.place_order({shop.product(stock=2): 1}, token="tok_declined")
    trace_id = trace_of(shop, order["id"])[0]["context"]["trace_id"].removeprefix("0x")

    lines = [json.loads(line.split(" | ", 1)[1]) for line in shop.log.read_text().splitlines()
             if " | {" in line]
    about = [line for line in lines if line.get("saga_id") == order["id"]]
    assert [line["message"].split(" is ")[1] for line in about] == ["COMPENSATING (payment_declined)",
                                                                    "COMPENSATED (payment_declined)"]
    assert {(line["part"], line["order_id"], line["trace_id"]) for line in about} == {
        ("orchestrator", order["id"], trace_id)}
