"""`sagashop bench`: checkouts against a running shop, through the gateway (or straight to the orchestrator over
gRPC, to separate the gateway's cost), with latency percentiles, outcomes and the saga log's time per step.

`--without-log` is the durability baseline: this process runs the checkout saga itself (the orchestrator's own
steps and runner) against the shop's services, with a saga log that keeps nothing, so the same gRPC calls are
made without a single saga log write (and without the hop to the orchestrator)."""

import asyncio
import json
import math
import statistics
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import grpc

from sagashop.kit.callers import Metadata, credential
from sagashop.kit.settings import Settings
from sagashop.v1 import orchestrator_pb2, orchestrator_pb2_grpc

from .processes import cpu_seconds, sample, shop_processes
from .shopclient import ADDRESS, ORDERS_PER_CUSTOMER, ShopClient


@dataclass
class Result:
    sku: str = ""  # the product made for the run, one unit per checkout
    checkouts: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    steps_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per checkout, by part (a shop on this machine)
    client_cpu_ms: float = 0.0  # per checkout, this benchmark's own (it shares the machine with a local shop)
    memory_mib: dict[str, list[float]] = field(default_factory=dict)  # RSS samples every 2 s, by part

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        pct = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
        return {"sku": self.sku, "checkouts": self.checkouts, "seconds": round(self.seconds, 2),
                "throughput_per_s": round(self.checkouts / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": round(pct[49], 1), "p95_ms": round(pct[94], 1), "p99_ms": round(pct[98], 1),
                "max_ms": round(lat[-1], 1), "outcomes": dict(self.outcomes), "steps_ms": self.steps_ms,
                "cpu_ms_per_checkout": {part: round(ms, 2) for part, ms in self.cpu_ms.items()},
                "client_cpu_ms_per_checkout": round(self.client_cpu_ms, 2),
                "memory_mib": {part: {"first": mib[0], "last": mib[-1], "max": max(mib)}
                               for part, mib in self.memory_mib.items()}}


async def run(url: str, admin: tuple[str, str], checkouts: int, concurrency: int, rate: float | None,
              direct: str | None, settings: Settings, without_log: bool = False) -> Result:
    # The checkouts go through aiohttp, the set-up through the shop's client (httpx): aiohttp spends several times
    # less CPU per request, and a benchmark on the shop's machine takes its CPU from the shop.
    async with ShopClient(url) as shop, aiohttp.ClientSession(
            base_url=url, timeout=aiohttp.ClientTimeout(total=60),
            connector=aiohttp.TCPConnector(limit=concurrency + 4)) as http:
        await shop.sign_in_admin(*admin)
        sku = f"BENCH-{uuid.uuid4().hex[:6].upper()}"
        await shop.put_product(sku, checkouts * 2 + 10, 1_000, name="Bench")
        accounts = max(concurrency, math.ceil(checkouts / ORDERS_PER_CUSTOMER))
        users = [vars(await shop.sign_up("Bench")) for _ in range(accounts)]
        async with _watching(url) as watched:
            if without_log:
                async with _without_log(settings, sku) as place:
                    result, order_ids = await drive(place, users, checkouts, concurrency, rate)
            else:
                place = _via_grpc(direct, sku, credential(settings.caller_secret(), "bench")) if direct else \
                    via_gateway(http, sku)
                result, order_ids = await drive(place, users, checkouts, concurrency, rate)
        if not without_log:
            result.steps_ms = await _step_times(shop, order_ids[:200])
        result.sku, (cpu, result.memory_mib) = sku, watched
        result.cpu_ms = {part: seconds * 1000 / checkouts for part, seconds in cpu.items()}
        return result


@asynccontextmanager
async def _watching(url: str) -> AsyncIterator[tuple[dict[str, float], dict[str, list[float]]]]:
    """While the checkouts run: the CPU seconds each part of the shop used, and its memory every 2 s (nothing for
    a shop on another machine)."""
    port = urlsplit(url).port or 80
    processes = shop_processes(port) if urlsplit(url).hostname in ("127.0.0.1", "localhost") else {}
    used: dict[str, float] = {}
    memory: dict[str, list[float]] = {}
    before, stop = cpu_seconds(processes), asyncio.Event()
    sampler = asyncio.create_task(sample(memory, port, stop)) if processes else None
    try:
        yield used, memory
    finally:
        stop.set()
        if sampler is not None:
            await sampler
        after = cpu_seconds(processes)
        used.update({part: after[part] - before[part] for part in before if part in after})


def via_gateway(http: aiohttp.ClientSession, sku: str) -> Any:
    body = {"items": [{"sku": sku, "quantity": 1}], "payment_token": "tok_ok", "shipping_address": ADDRESS}

    async def place(user: dict[str, Any]) -> tuple[str, str]:
        async with http.post("/v1/orders", json=body, headers=user["headers"]) as reply:
            try:
                order = await reply.json(content_type=None)
            except ValueError:  # not JSON: a proxy's error page, a crash
                order = {}
            return (order.get("status") or f"HTTP {reply.status}"), order.get("id", "")

    return place


def _via_grpc(address: str, sku: str, metadata: Metadata) -> Any:
    """StartCheckout straight to the orchestrator, signed as the shop's parts sign their calls (kit.callers)."""
    stub = orchestrator_pb2_grpc.OrchestratorServiceStub(grpc.aio.insecure_channel(address))

    async def place(user: dict[str, Any]) -> tuple[str, str]:
        reply = await stub.StartCheckout(orchestrator_pb2.StartCheckoutRequest(
            user_id=user["id"], lines=[{"sku": sku, "quantity": 1}], payment_token="tok_ok", address=ADDRESS,
            wait_ms=10_000), timeout=30, metadata=metadata)
        return reply.state, reply.order_id

    return place


@asynccontextmanager
async def _without_log(settings: Settings, sku: str) -> AsyncIterator[Any]:
    from services.orchestrator.main import checkout_without_log

    async with checkout_without_log(settings) as checkout:
        async def place(user: dict[str, Any]) -> tuple[str, str]:
            return await checkout(orchestrator_pb2.StartCheckoutRequest(
                user_id=user["id"], lines=[{"sku": sku, "quantity": 1}], payment_token="tok_ok", address=ADDRESS))

        yield place


async def drive(place: Any, users: list[dict[str, Any]], checkouts: int, concurrency: int,
                rate: float | None) -> tuple[Result, list[str]]:
    """Closed loop (`concurrency` at a time, each placing its next order when the last one is answered), or
    open loop at `rate` orders/s (latency counted from when each order was due); the i-th order is placed by the
    i-th user, round the list."""
    result, order_ids, todo = Result(), [], iter(range(checkouts))
    started, cpu_started = time.perf_counter(), time.process_time()

    async def one(user: dict[str, Any], due: float) -> None:
        outcome, order_id = await place(user)
        result.latencies_ms.append((time.perf_counter() - due) * 1000)
        result.outcomes[outcome] += 1
        order_ids.append(order_id)

    async def customer() -> None:
        for i in todo:
            await one(users[i % len(users)], time.perf_counter())

    if rate:
        tasks = []
        for i in range(checkouts):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(users[i % len(users)], due)))
        await asyncio.gather(*tasks)
    else:
        await asyncio.gather(*(customer() for _ in range(concurrency)))
    result.seconds, result.checkouts = time.perf_counter() - started, checkouts
    result.client_cpu_ms = (time.process_time() - cpu_started) * 1000 / checkouts
    return result, order_ids


async def _step_times(shop: ShopClient, order_ids: list[str]) -> dict[str, Any]:
    """From the saga log: mean and p95 milliseconds of each step, and how many took more than one attempt."""
    durations: dict[str, list[float]] = defaultdict(list)
    retried: Counter[str] = Counter()
    for order_id in filter(None, order_ids):
        saga = await shop.saga(order_id)
        for step in saga.get("steps", []):
            if step["finished_at"]:
                took = datetime.fromisoformat(step["finished_at"]) - datetime.fromisoformat(step["started_at"])
                durations[step["name"]].append(took.total_seconds() * 1000)
                retried[step["name"]] += step["attempts"] > 1
    return {name: {"mean": round(statistics.fmean(ms), 2), "p95": round(sorted(ms)[int(len(ms) * 0.95) - 1], 2),
                   "retried": retried[name]} for name, ms in durations.items()}


def table(result: Result) -> str:
    s = result.summary()
    lines = [f"{s['checkouts']} checkouts in {s['seconds']} s: {s['throughput_per_s']}/s",
             f"latency ms: p50 {s['p50_ms']}  p95 {s['p95_ms']}  p99 {s['p99_ms']}  max {s['max_ms']}",
             f"outcomes: {s['outcomes']}"]
    if s["steps_ms"]:
        lines += ["saga steps (ms): mean / p95 / retried",
                  *(f"  {name:<16} {v['mean']:>8} {v['p95']:>8} {v['retried']:>4}"
                    for name, v in s["steps_ms"].items())]
    if s["cpu_ms_per_checkout"]:
        lines += ["processes: CPU ms per checkout / memory MiB first -> last (max)",
                  *(f"  {part:<16} {ms:>8}" + (f"   {m['first']} -> {m['last']} ({m['max']})"
                                              if (m := s["memory_mib"].get(part)) else "")
                    for part, ms in s["cpu_ms_per_checkout"].items())]
    lines.append(f"benchmark client: CPU ms per checkout {s['client_cpu_ms_per_checkout']}")
    return "\n".join(lines)


def as_json(result: Result) -> str:
    return json.dumps(result.summary(), indent=2)
