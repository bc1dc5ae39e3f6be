"""The campaign: products and customers, concurrent orders under changing fault rules and orchestrator kills and
faults on the event path, then quiet (faults cleared, parked sagas retried as an operator would) and the audits:
stock and money, then what the event consumers built."""

import asyncio
import math
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from sagashop.kit.clock import now
from sagashop.kit.settings import Settings

from ..processes import sample
from ..shopclient import ORDERS_PER_CUSTOMER, ShopClient, order_body
from . import eventaudit, faults
from .audit import violations
from .eventpath import EventFaults, EventPath
from .replicas import Replicas

TERMINAL = {"APPROVED", "REJECTED", "CANCELLED"}


@dataclass
class Plan:
    orders: int = 500
    concurrency: int = 32
    seed: int = 7
    duration: float = 120.0  # seconds over which the orders are spread
    replicas: int = 2  # orchestrator replicas the campaign owns and kills
    skus: int = 6
    stock: int = 0  # units of each SKU; 0: enough that most orders can be approved
    reservation_ttl: float = 0.0  # seconds; >0: a replica of the inventory sweeps reservations this old
    event_rounds: int = 1  # times each fault on the event path is made (eventpath.KINDS), while orders are placed
    outage: float = 3.0  # seconds the broker and the mail sink stay down each time: within the consumers' retries
    catch_up: float = 90.0  # for the consumers to agree with the orders (a killed consumer's ack wait: 30 s default)


@dataclass
class Report:
    outcomes: Counter[str] = field(default_factory=Counter)
    faults_fired: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    crashes: int = 0
    relay_crashes: int = 0
    cancelled: int = 0
    parked_retried: list[str] = field(default_factory=list)
    quiesce_seconds: float = 0.0
    memory_mib: dict[str, list[float]] = field(default_factory=dict)  # per part, while orders ran
    events: EventFaults = field(default_factory=EventFaults)
    event_audit: eventaudit.EventAudit = field(default_factory=eventaudit.EventAudit)
    violations: list[str] = field(default_factory=list)


async def run(url: str, admin: tuple[str, str], plan: Plan, settings: Settings) -> Report:
    """`settings`: the shop's, as the campaign runs beside it (its data directory, ports and event names)."""
    rng, report, shop = random.Random(plan.seed), Report(), ShopClient(url, outlast=60)
    path = EventPath(settings, rng)
    replicas = Replicas(plan.replicas, rng)
    sweeper = Replicas(1 if plan.reservation_ttl else 0, rng, "inventory",
                       SAGASHOP_RESERVATION_TTL_SECONDS=str(plan.reservation_ttl),
                       SAGASHOP_SWEEP_INTERVAL_SECONDS=str(plan.reservation_ttl / 5))
    try:
        await shop.sign_in_admin(*admin)
        units = plan.stock or max(60, plan.orders * 3 // plan.skus)
        stock = {f"CHAOS-{uuid.uuid4().hex[:6].upper()}": units for _ in range(plan.skus)}
        for sku, units in stock.items():
            await shop.put_product(sku, units, rng.choice([500, 1_250, 9_900]), name=f"Chaos {sku}")
        accounts = max(8, math.ceil(plan.orders / ORDERS_PER_CUSTOMER))
        customers = [await shop.sign_up("Chaos") for _ in range(accounts)]
        start = await _events_before(shop)
        await replicas.start()
        await sweeper.start()
        await path.start()
        await shop.add_fault(**faults.random_rule(rng, faults.targets()))
        stop = asyncio.Event()
        chaos = asyncio.create_task(_stir(shop, replicas, path, rng, report, stop))
        watch = asyncio.create_task(sample(report.memory_mib, httpx.URL(url).port or 80, stop))
        events = asyncio.create_task(path.run(shop, plan.event_rounds, 0.6 * plan.duration, plan.outage))
        placed = await _place(shop, plan, rng, [c.headers for c in customers], list(stock))
        await events
        stop.set()
        await asyncio.gather(chaos, watch)
        report.kills = replicas.kills
        orders = await _quiesce(shop, placed, rng, report)
        report.outcomes = Counter(f"{o['status']} {o['failure_reason'] or ''}".strip() for o in orders.values())
        report.violations += await violations(shop, orders, stock)
        report.events = path.done
        context = eventaudit.Context(orders, list(stock), {c.email for c in customers}, path.done.poison)
        report.event_audit = await eventaudit.audit(shop, settings, start, context, plan.catch_up)
        report.violations += path.done.failures + report.event_audit.violations
        return report
    finally:
        await replicas.stop()
        await sweeper.stop()
        await path.stop()
        await shop.close()


async def _events_before(shop: ShopClient, within: float = 10.0) -> eventaudit.Before:
    """The event side as the campaign finds it, once two readings a second apart agree (earlier orders' events
    applied), or after `within` seconds: the campaign's share is what is added to it. Its sales report covers
    today and tomorrow (UTC), should the campaign run past midnight."""
    today = now().date()
    days = (today.isoformat(), (today + timedelta(days=1)).isoformat())
    deadline, seen = time.monotonic() + within, await eventaudit.before(shop, days)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        seen, last = await eventaudit.before(shop, days), seen
        if seen == last:
            break
    return seen


async def _place(shop: ShopClient, plan: Plan, rng: random.Random, customers: list[dict[str, str]],
                 skus: list[str]) -> list[str]:
    """`plan.orders` orders from `plan.concurrency` concurrent customers, spread over about `plan.duration`
    seconds, so the faults change while they run."""
    placed: list[str] = []
    todo = iter(range(plan.orders))
    pause = 0.8 * plan.duration * plan.concurrency / plan.orders  # mean seconds between one worker's orders
    draws = [(rng.choice(customers), {s: rng.randint(1, 3) for s in rng.sample(skus, rng.randint(1, 3))},
              rng.choices(["tok_ok", "tok_declined"], [9, 1])[0], rng.choices(["FR", "DE", "AQ"], [8, 1, 1])[0])
             for _ in range(plan.orders)]

    async def worker() -> None:
        for i in todo:
            user, lines, token, country = draws[i]
            order = await shop.place_order(user, order_body(lines, token, country), wait=0, key=uuid.uuid4().hex)
            placed.append(order["id"])
            await asyncio.sleep(rng.uniform(0, 2 * pause))

    await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    return placed


async def _stir(shop: ShopClient, replicas: Replicas, path: EventPath, rng: random.Random, report: Report,
                stop: asyncio.Event) -> None:
    """Every second or so: new random fault rules, now and then an orchestrator crash or a replica killed, and
    the relay crashes the event path asks for."""
    crashes: dict[str, str] = {}  # crash rules not yet seen to fire: what they crash, by id
    targets, steps = faults.targets(), faults.step_names()
    while not stop.is_set():
        unfired = await _tally(shop, report, crashes)  # (read before adding: the path may ask for one meanwhile)
        path.relay_crashes_due += unfired  # a relay that published nothing while its rule stood: again
        for _ in range(rng.randint(1, 3)):
            await shop.add_fault(**faults.random_rule(rng, targets))
        if rng.random() < 0.15:
            crashes[(await shop.add_fault(**faults.crash_rule(rng, steps)))["id"]] = "orchestrator"
        await _add_relay_crashes(shop, path, crashes)
        if rng.random() < 0.2:
            await replicas.kill_one()
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(0.5, 2.0))
        except TimeoutError:
            pass
    await _add_relay_crashes(shop, path, crashes)  # (asked for as the last orders went in)
    await _relay_crashes_fired(shop, crashes)
    await _tally(shop, report, crashes)


async def _add_relay_crashes(shop: ShopClient, path: EventPath, crashes: dict[str, str]) -> None:
    while path.relay_crashes_due > 0:
        crashes[await path.add_relay_crash(shop)] = "relay"


async def _relay_crashes_fired(shop: ShopClient, crashes: dict[str, str], within: float = 15.0) -> None:
    """Waits (bounded) until the relay crash rules that stand have fired (the crashed service's rules are gone
    with it): one asked for as the last orders were placed would otherwise meet the last tally unfired."""
    standing = {rule_id for rule_id, kind in crashes.items() if kind == "relay"}
    deadline = time.monotonic() + within
    while standing and time.monotonic() < deadline:
        standing &= {rule["id"] for rule in await shop.items("/v1/admin/faults")}
        if standing:
            await asyncio.sleep(0.2)


async def _tally(shop: ShopClient, report: Report, crashes: dict[str, str]) -> int:
    """Counts what the current rules fired, then clears them. A crash rule that fired took its process's rules
    with it: it is counted by its absence. How many relay crash rules did not fire (their relay published no
    batch while they stood), to be asked for again."""
    cleared = await shop.clear_faults()
    unfired = sum(1 for rule in cleared if crashes.get(rule["id"]) == "relay")
    for rule in cleared:
        report.faults_fired[f"{rule['service']}.{rule['method']}"] += rule["fired"]
    fired = Counter(kind for rule_id, kind in crashes.items() if rule_id not in {rule["id"] for rule in cleared})
    report.crashes += fired["orchestrator"]
    report.relay_crashes += fired["relay"]
    crashes.clear()
    return unfired


async def _quiesce(shop: ShopClient, placed: list[str], rng: random.Random, report: Report,
                   within: float = 300.0) -> dict[str, dict[str, Any]]:
    """Waits until every order is terminal (retrying parked sagas, as an operator would), cancels some
    approved ones, and waits again."""
    started = time.monotonic()
    orders = await _settled(shop, placed, report, started + within)
    approved = [o for o, order in orders.items() if order["status"] == "APPROVED"]
    for order_id in rng.sample(approved, len(approved) // 10):
        await shop.cancel(order_id, wait=0)
        report.cancelled += 1
    orders = await _settled(shop, placed, report, started + within)
    report.quiesce_seconds = round(time.monotonic() - started, 1)
    return orders


async def _settled(shop: ShopClient, placed: list[str], report: Report, deadline: float) -> dict[str, Any]:
    """Once no saga runs or compensates (parked ones are retried), the orders as they stand."""
    while True:
        for saga in await shop.sagas("NEEDS_ATTENTION"):
            report.parked_retried.append(saga["saga_id"])
            await shop.retry_saga(saga["saga_id"], "chaos campaign: faults cleared")
        busy = [s for state in ("RUNNING", "COMPENSATING", "NEEDS_ATTENTION") for s in await shop.sagas(state)]
        if not busy or time.monotonic() > deadline:
            orders = {o: await shop.order(o) for o in placed}
            pending = [o for o, order in orders.items() if order["status"] not in TERMINAL]
            if busy or pending:
                report.violations.append(f"not settled in time: {len(pending)} orders, {len(busy)} sagas active")
            return orders
        await asyncio.sleep(1.0)
