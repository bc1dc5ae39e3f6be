"""The audit of the event path, once the faults are over: what the consumers built from the events must agree with
the orders as they ended. It asks again until it agrees or its time is up (the consumers catch up, a message a
killed consumer held comes again after its ack wait), then rebuilds the reporting read models and compares."""

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sagashop.kit.settings import EVENT_CONSUMERS, SAGA_PARTS, Settings

from ..local import mailsink
from ..local.up import METRICS_OFFSET
from ..shopclient import ShopClient

OUTBOXES = ("user", *SAGA_PARTS)  # the services that publish events through an outbox
ORDER_EVENTS = {  # an order's own events, by how it ended: each exactly once
    "APPROVED": ["order.placed", "order.approved"],
    "CANCELLED": ["order.placed", "order.approved", "order.cancelled"],
    "REJECTED": ["order.placed", "order.rejected"],
}
NOTIFIED = {  # the notifications of an order, by how it ended: one per transition
    "APPROVED": ["order_approved", "shipment_created"],
    "CANCELLED": ["order_approved", "shipment_created", "order_cancelled"],
    "REJECTED": ["order_rejected"],
}


@dataclass
class Before:
    """What the shop's event side held before the campaign's first order: the campaign's share is the rest."""

    days: tuple[str, str]  # the UTC days of the sales report read, first and last
    orders: dict[str, Any]  # the sales report's order counts
    dead_letters: set[str]  # ids


@dataclass
class Context:
    """What the audit compares with: the orders as they ended and who placed them, the poison published."""

    orders: dict[str, dict[str, Any]]
    skus: list[str]
    emails: set[str]  # the campaign's customers: the sink's messages to them are the campaign's
    poison: list[str]


@dataclass
class EventAudit:
    catch_up_seconds: float = 0.0
    notifications: int = 0
    sink_messages: int | None = None  # None: the sink is not visible from here
    dead_letters: list[str] = field(default_factory=list)  # `consumer event_id` of those the campaign caused
    outbox_depth: dict[str, float] = field(default_factory=dict)
    rebuild: dict[str, Any] = field(default_factory=dict)  # the rebuild's answer
    violations: list[str] = field(default_factory=list)


async def before(shop: ShopClient, days: tuple[str, str]) -> Before:
    report = await shop.sales_report(*days)
    return Before(days, report["orders"], {d["id"] for d in await shop.dead_letters()})


async def audit(shop: ShopClient, settings: Settings, start: Before, ctx: Context, within: float) -> EventAudit:
    """The audit, asked again every second until it finds nothing or `within` seconds are over; then a rebuild."""
    result, began = EventAudit(), time.monotonic()
    while True:
        result.violations = await _cheap(shop, settings, start, ctx, result)
        if not result.violations:
            result.violations = await _per_order(shop, settings, ctx, result)
        if not result.violations or time.monotonic() - began > within:
            break
        await asyncio.sleep(1.0)
    result.catch_up_seconds = round(time.monotonic() - began, 1)
    result.violations += await _rebuilt(shop, start, ctx, result)
    return result


async def _cheap(shop: ShopClient, settings: Settings, start: Before, ctx: Context, result: EventAudit) -> list[str]:
    """Outboxes, dead letters and the sales report: a few calls, whatever the campaign's size."""
    found = []
    result.outbox_depth = await outbox_depths(settings)
    found += [f"outbox of {s}: {d:g} events not published" for s, d in result.outbox_depth.items() if d]
    found += [f"outbox of {s}: no sagashop_outbox_depth on its metrics port" for s in OUTBOXES
              if s not in result.outbox_depth]
    new = [d for d in await shop.dead_letters() if d["id"] not in start.dead_letters]
    result.dead_letters = sorted(f"{d['consumer']} {d['event_id']}" for d in new)
    expected = sorted(f"{c} {e}" for c in EVENT_CONSUMERS for e in ctx.poison)
    if result.dead_letters != expected:
        found.append(f"dead letters {result.dead_letters}, expected the poison events: {expected}")
    return found + sales_differences(await shop.sales_report(*start.days), start, ctx.orders, ctx.skus)


def sales_differences(report: dict[str, Any], start: Before, orders: dict[str, dict[str, Any]],
                      skus: list[str]) -> list[str]:
    """Per SKU of the campaign: the units and revenue of its approved orders (a cancelled one added, then
    subtracted); the orders approved, cancelled and rejected by reason since `start`."""
    units: Counter[tuple[str, str]] = Counter()
    revenue: Counter[tuple[str, str]] = Counter()
    for order in orders.values():
        for line in order["items"] if order["status"] == "APPROVED" else []:
            units[line["sku"], order["currency"]] += line["quantity"]
            revenue[line["sku"], order["currency"]] += line["quantity"] * line["unit_price_cents"]
    found = []
    listed = {(i["sku"], i["currency"]): (i["units"], i["revenue_cents"]) for i in report["items"] if i["sku"] in skus}
    for key in set(listed) | set(units):
        if listed.get(key, (0, 0)) != (units[key], revenue[key]):
            found.append(f"sales of {key[0]} {key[1]}: {listed.get(key)} (units, revenue), expected "
                         f"{(units[key], revenue[key])}")
    ended = Counter(o["status"] for o in orders.values())
    rejected = Counter(o["failure_reason"] for o in orders.values() if o["status"] == "REJECTED")
    counts = report["orders"]
    seen = {"approved": counts["approved"] - start.orders["approved"],
            "cancelled": counts["cancelled"] - start.orders["cancelled"],
            "rejected": {r: n - start.orders["rejected"].get(r, 0) for r, n in counts["rejected"].items()
                         if n != start.orders["rejected"].get(r, 0)}}
    expected = {"approved": ended["APPROVED"] + ended["CANCELLED"], "cancelled": ended["CANCELLED"],
                "rejected": dict(rejected)}
    if seen != expected:
        found.append(f"sales report orders since the campaign began: {seen}, expected {expected}")
    return found


async def _per_order(shop: ShopClient, settings: Settings, ctx: Context, result: EventAudit) -> list[str]:
    """Each order's timeline and notifications, and the sink's messages to the campaign's customers."""
    found = []
    result.notifications = 0
    for order_id, order in ctx.orders.items():
        events = await shop.order_events(order_id)
        own = sorted(e["event_type"] for e in events if e["event_type"].startswith("order."))
        if own != sorted(ORDER_EVENTS[order["status"]]) or len({e["event_id"] for e in events}) != len(events):
            found.append(f"order {order_id} {order['status']}: events {[e['event_type'] for e in events]}")
        kinds = sorted(n["kind"] for n in await shop.notifications(order_id))
        result.notifications += len(kinds)
        if kinds != sorted(NOTIFIED[order["status"]]):
            found.append(f"order {order_id} {order['status']}: notifications {kinds}")
    result.sink_messages = sink_messages(settings, ctx.emails)
    if result.sink_messages is not None and result.sink_messages != result.notifications:
        found.append(f"{result.sink_messages} messages in the mail sink for {result.notifications} notifications")
    return found


def sink_messages(settings: Settings, emails: set[str]) -> int | None:
    """How many messages the local sink holds for these addresses; None when the shop mails elsewhere."""
    folder = settings.data_dir / mailsink.STORE  # one file per Message-ID
    if settings.smtp_url or not folder.is_dir():
        return None
    parser, count = BytesHeaderParser(), 0
    for path in folder.glob("*.eml"):
        with path.open("rb") as f:
            count += parseaddr(parser.parse(f).get("To", ""))[1] in emails  # `Name <address>`
    return count


async def _rebuilt(shop: ShopClient, start: Before, ctx: Context, result: EventAudit) -> list[str]:
    """The reporting read models rebuilt from the stream give the same report and timelines, to the field."""
    report, timelines = await shop.sales_report(*start.days), await _timelines(shop, ctx)
    result.rebuild = await shop.rebuild("reporting")
    found = []
    if (again := await shop.sales_report(*start.days)) != report:
        found.append(f"rebuild changed the sales report: {report} -> {again}")
    changed = [o for o, timeline in (await _timelines(shop, ctx)).items() if timeline != timelines[o]]
    if changed:
        found.append(f"rebuild changed the timelines of {len(changed)} orders, e.g. {changed[0]}")
    return found


async def _timelines(shop: ShopClient, ctx: Context) -> dict[str, list[dict[str, Any]]]:
    return {order_id: await shop.order_events(order_id) for order_id in ctx.orders}


async def outbox_depths(settings: Settings) -> dict[str, float]:
    """sagashop_outbox_depth of each service, from its metrics port (its gRPC port + 1000 under `sagashop up`);
    a service whose port does not answer is left out."""
    depths: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for service in OUTBOXES:
            try:
                text = (await http.get(f"http://127.0.0.1:{settings.port(service) + METRICS_OFFSET}/metrics")).text
            except httpx.HTTPError:
                continue
            for family in text_string_to_metric_families(text):
                depths.update({s.labels["service"]: s.value for s in family.samples
                               if s.name == "sagashop_outbox_depth" and s.labels.get("service") == service})
    return depths
