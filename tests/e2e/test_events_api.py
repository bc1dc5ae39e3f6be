"""What the domain events give users and operators through the gateway: an order's timeline, the sales report,
the emails sent, dead letters and their replay, rebuilding the read models. All of it is eventually consistent, so
each test waits (a few seconds at most) for what an event brings."""

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import httpx
import nats

from sagashop.events.streams import Streams
from tests.e2e.test_api import assert_problem
from tests.shop import Shop, spawn, stop_shop

T = TypeVar("T")
WITHIN = 5.0  # seconds an event takes to reach a read model at most, here (usually well under one)


def eventually(read: Callable[[], T], ready: Callable[[T], bool], within: float = WITHIN) -> T:
    """`read()` once `ready` says so; the last one read after `within` seconds otherwise (for the assertion)."""
    deadline = time.monotonic() + within
    while not ready(found := read()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def event_types(shop: Shop, order_id: str, user: dict[str, str] | None = None) -> list[str]:
    return [e["event_type"] for e in shop.run(shop.client.order_events(order_id, user))]


def test_a_checkouts_events_appear_oldest_first_to_its_owner_and_admins_only(shop):
    customer = shop.customer()
    order = shop.place_order({shop.product(stock=3): 1}, user=customer)
    # each service's relay publishes on its own: the timeline fills in within a round or two of each
    expected = {"order.placed", "stock.reserved", "payment.charged", "stock.committed", "shipment.created",
                "order.approved"}
    types = eventually(lambda: event_types(shop, order["id"], customer), lambda t: expected <= set(t))

    assert sorted(types) == sorted(expected)  # each once
    # the order is recorded while its stock is reserved (two steps at once): either may come first
    assert set(types[:2]) == {"order.placed", "stock.reserved"} and types[-1] == "order.approved"
    events = shop.http.get(f"/v1/orders/{order['id']}/events", headers=shop.admin).json()["items"]
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    assert all(e["payload"]["order_id"] == order["id"] for e in events)
    assert_problem(shop.http.get(f"/v1/orders/{order['id']}/events", headers=shop.customer()), 404, "not_found")
    assert_problem(shop.http.get(f"/v1/orders/{order['id']}/events"), 401, "unauthorized")


def sales_of(shop: Shop, sku: str) -> list[dict[str, Any]]:
    return [line for line in shop.run(shop.client.sales_report())["items"] if line["sku"] == sku]


def test_the_sales_report_counts_an_approved_checkout_and_a_rebuild_gives_the_same(shop):
    sku = shop.product(stock=5, price_cents=1_250)
    shop.place_order({sku: 2})
    lines = eventually(lambda: sales_of(shop, sku), bool)

    assert lines == [{"sku": sku, "currency": "EUR", "units": 2, "revenue_cents": 2_500}]
    report = shop.run(shop.client.sales_report())
    today = datetime.now(UTC).date().isoformat()
    assert (report["from"], report["to"]) == (today, today) and report["as_of"] is not None
    assert report["orders"]["approved"] >= 1 and set(report["compensations"]) <= {
        "stock_released", "payment_refunded", "shipment_cancelled"}

    rebuilt = shop.run(shop.client.rebuild("reporting"))
    assert rebuilt["part"] == "reporting" and rebuilt["events"] >= 1 and rebuilt["seconds"] >= 0
    assert sales_of(shop, sku) == lines


def test_the_reports_refuse_bad_ranges_and_anyone_but_an_admin(shop):
    today = datetime.now(UTC).date()
    for days in ({"from": "2030-01-02", "to": "2030-01-01"}, {"from": "2030-13-01"},
                 {"from": "2030-01-01", "to": "2031-01-03"}, {"to": "yesterday"}):
        assert_problem(shop.http.get("/v1/admin/reports/sales", params=days, headers=shop.admin), 422,
                       "validation_error")
    a_year = {"from": (today - timedelta(days=365)).isoformat(), "to": today.isoformat()}
    assert shop.http.get("/v1/admin/reports/sales", params=a_year, headers=shop.admin).status_code == 200
    for path in ("/v1/admin/reports/sales", "/v1/admin/notifications?order_id=x", "/v1/admin/events/dead-letters"):
        assert_problem(shop.http.get(path, headers=shop.customer()), 403, "forbidden")
    assert_problem(shop.http.get("/v1/admin/notifications", headers=shop.admin), 422, "validation_error")
    assert_problem(shop.http.get("/v1/admin/events/dead-letters?limit=0", headers=shop.admin), 422,
                   "validation_error")
    assert date.fromisoformat(shop.run(shop.client.sales_report())["to"]) == today


def test_an_approved_order_is_emailed_once_to_its_customer(shop):
    customer = shop.run(shop.client.sign_up("Ada"))
    order = shop.place_order({shop.product(stock=3): 1}, user=customer.headers)
    kinds = eventually(lambda: [n["kind"] for n in shop.run(shop.client.notifications(order["id"]))],
                       lambda k: {"order_approved", "shipment_created"} <= set(k))

    assert sorted(kinds) == ["order_approved", "shipment_created"]
    sent = shop.run(shop.client.notifications(order["id"]))
    assert {(n["order_id"], n["to"]) for n in sent} == {(order["id"], customer.email)}


def publish_poison(shop: Shop) -> str:
    """An order.approved event whose payload no consumer can read, published as a relay would; its event id."""
    async def publish() -> str:
        streams, event_id = Streams(shop.env.get("SAGASHOP_EVENTS_NAME", "sagashop")), uuid.uuid4().hex
        body = {"event_id": event_id, "event_type": "order.approved", "event_version": 1,
                "occurred_at": datetime.now(UTC).isoformat(), "metadata": {}, "payload": {"nonsense": True}}
        nc = await nats.connect(shop.env["SAGASHOP_NATS_URL"], connect_timeout=2)
        try:
            await nc.jetstream().publish(streams.subject("order.approved"), json.dumps(body).encode(),
                                         stream=streams.events, headers={"Nats-Msg-Id": event_id})
        finally:
            await nc.close()
        return event_id

    return shop.run(publish())


def test_a_poison_event_is_dead_lettered_listed_and_replayed(shop):
    event_id = publish_poison(shop)
    mine = eventually(lambda: [d for d in shop.run(shop.client.dead_letters()) if d["event_id"] == event_id],
                      lambda found: {"notification", "reporting"} <= {d["consumer"] for d in found})

    assert {d["consumer"] for d in mine} == {"notification", "reporting"}
    letter = next(d for d in mine if d["consumer"] == "reporting")
    assert letter["event_type"] == "order.approved" and letter["error"] and letter["failed_at"]

    assert shop.http.post(f"/v1/admin/events/dead-letters/{letter['id']}/replay", headers=shop.admin).status_code == 202
    again = eventually(lambda: [d for d in shop.run(shop.client.dead_letters()) if d["event_id"] == event_id
                                and d["consumer"] == "reporting"], lambda found: bool(found) and found[0] != letter)
    assert [d["id"] for d in again] != [letter["id"]]  # still poison: dead-lettered anew, the old letter gone
    assert_problem(shop.http.post(f"/v1/admin/events/dead-letters/{letter['id']}/replay", headers=shop.admin), 404,
                   "not_found")


def test_replaying_or_rebuilding_what_is_not_there_is_refused(shop):
    for path, status, code in (("/v1/admin/events/dead-letters/999999999/replay", 404, "not_found"),
                               ("/v1/admin/events/dead-letters/not-a-number/replay", 422, "validation_error"),
                               ("/v1/admin/events/rebuild/notification", 404, "not_found"),
                               ("/v1/admin/events/rebuild/nothing", 404, "not_found")):
        assert_problem(shop.http.post(path, headers=shop.admin), status, code)
    assert_problem(shop.http.post("/v1/admin/events/rebuild/reporting", headers=shop.customer()), 403, "forbidden")


def test_the_rebuild_command_prints_what_it_did_and_fails_with_the_shops_reason(shop):
    """As the admin of SAGASHOP_ADMIN_EMAIL and SAGASHOP_ADMIN_PASSWORD (the shop's, in its environment)."""
    done = subprocess.run([sys.executable, "-m", "tools.cli", "events", "rebuild", "reporting", "--url", shop.url],
                          env=shop.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reporting: rebuilt from ") and done.stdout.rstrip().endswith(" s")

    refused = subprocess.run([sys.executable, "-m", "tools.cli", "events", "rebuild", "notification", "--url",
                              shop.url], env=shop.env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "'notification' has no read models" in refused.stderr


def test_dead_letters_answer_503_on_a_gateway_without_a_broker(shop, tmp_path):
    bare = {k: v for k, v in shop.env.items() if k != "SAGASHOP_NATS_URL"}
    with (tmp_path / "gateway.log").open("wb") as log:
        process, port = spawn("gateway", bare, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for method, path in (("GET", "/v1/admin/events/dead-letters"),
                                 ("POST", "/v1/admin/events/dead-letters/1/replay")):
                reply = http.request(method, path, headers=shop.admin)
                assert_problem(reply, 503, "events_unavailable")
                assert reply.headers["Retry-After"] == "5"
    finally:
        stop_shop(process)
