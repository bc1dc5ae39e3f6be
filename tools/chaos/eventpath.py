"""Faults on the event path, each bounded and undone by the campaign itself: the shop's NATS server paused then
resumed, and killed (`sagashop up` restarts it); a service's relay crashed between publish and mark (a crash rule
on its `publish_events` point: the service exits as if killed, and up restarts it); a consumer replica of the
campaign's own killed -9 while events flow; poison events published straight to the events stream; the mail sink
down (killed, its port held by a server answering 421) then up again.

The broker and the sink are found through the pid files `up` keeps in `<data dir>/run/`; a shop whose broker or
mail server is not `up`'s own (SAGASHOP_NATS_URL or SAGASHOP_SMTP_URL set for it) is not stopped: those faults
are skipped and the report says why."""

import asyncio
import contextlib
import json
import os
import random
import signal
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil
from nats.errors import Error as NatsError

from sagashop.events.relay import CRASH_POINT
from sagashop.events.streams import Streams
from sagashop.kit.clock import now
from sagashop.kit.settings import EVENT_CONSUMERS, Settings

from ..local import broker
from ..local.up import PID_DIR
from ..shopclient import ShopClient
from .replicas import Replicas

KINDS = ("broker_pause", "broker_kill", "relay_crash", "consumer_kill", "poison", "smtp_down")
BACK_WITHIN = 30.0  # seconds a restarted broker or sink has to answer again; past it the campaign says so
POISON_TYPE = "order.approved"  # every consumer handles it: each dead-letters a poison event once


@dataclass
class EventFaults:
    """What the campaign did to the event path, for the report and the audit."""

    fired: Counter[str] = field(default_factory=Counter)  # per kind
    skipped: dict[str, str] = field(default_factory=dict)  # kind: why it could not be done here
    poison: list[str] = field(default_factory=list)  # the event ids of the poison events published
    failures: list[str] = field(default_factory=list)  # a broker or sink that did not come back in time


class EventPath:
    def __init__(self, settings: Settings, rng: random.Random) -> None:
        self.rng, self.streams = rng, Streams.of(settings)
        self.run_dir = settings.data_dir / PID_DIR
        self.nats_url = settings.nats_url or broker.url_of(settings.data_dir)
        self.own_broker = broker.url_of(settings.data_dir) is not None and self._pid(broker.NAME) is not None
        self.smtp_port = None if settings.smtp_url else settings.smtp_port  # up's sink, if it runs one
        env = {**({"SAGASHOP_NATS_URL": self.nats_url} if self.nats_url else {}),
               **({"SAGASHOP_SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}"} if self.smtp_port else {})}
        self.consumers = [Replicas(1, rng, part, **env) for part in EVENT_CONSUMERS]
        self.done = EventFaults()
        self.relay_crashes_due = 0  # crash rules for the campaign's stirring to add, with the other rules

    async def start(self) -> None:
        for replicas in self.consumers:
            await replicas.start()

    async def stop(self) -> None:
        for replicas in self.consumers:
            await replicas.stop()

    async def run(self, shop: ShopClient, rounds: int, within: float, outage: float) -> None:
        """`rounds` times each kind of fault, at seeded moments over `within` seconds, one at a time; the broker
        and the sink stay down `outage` seconds."""
        moments = sorted((self.rng.uniform(0, within), kind) for kind in KINDS * rounds)
        started = asyncio.get_running_loop().time()
        for moment, kind in moments:
            await asyncio.sleep(max(0.0, started + moment - asyncio.get_running_loop().time()))
            try:
                why = await getattr(self, kind)(shop, outage)
            except (OSError, TimeoutError, NatsError) as e:  # the broker, say, not back yet: the report says
                self.done.failures.append(f"{kind}: {e!r}")
                continue
            if why:
                self.done.skipped[kind] = why
            else:
                self.done.fired[kind] += 1

    async def broker_pause(self, _: ShopClient, outage: float) -> str:
        """SIGSTOP, then SIGCONT `outage` seconds later: a broker that answers nothing (publishes and fetches time
        out) and then carries on. (Should the campaign itself be killed meanwhile: `kill -CONT` the pid in
        `<data dir>/run/nats.pid`.)"""
        process = self._broker()
        if isinstance(process, str):
            return process
        process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(outage)
        finally:
            process.send_signal(signal.SIGCONT)
        return ""

    async def broker_kill(self, _: ShopClient, outage: float) -> str:
        """SIGKILL: up restarts the server on its store, the streams as they were on disk."""
        process = self._broker()
        if isinstance(process, str):
            return process
        process.kill()
        url = self.nats_url or ""

        async def back() -> bool:
            return self._pid(broker.NAME) not in (None, process.pid) and await broker.jetstream_answers(url)

        await self._until(back, "the NATS server")
        return ""

    async def relay_crash(self, _: ShopClient, __: float) -> str:
        """Asks for a relay crash rule (`relay_crash_rule`), added by the campaign with its other rules, which it
        replaces and counts every second or so."""
        self.relay_crashes_due += 1
        return ""

    async def add_relay_crash(self, shop: ShopClient) -> str:
        """A crash rule: the next batch the user service's relay has published, it never marks (the process exits);
        then a customer registers, so that there is a batch (the saga services' events come only while orders
        flow). Its id."""
        self.relay_crashes_due -= 1
        rule = await shop.add_fault(service="user", method=CRASH_POINT, crash="after", rate=1.0, count=1)
        await shop.register("Chaos relay")
        return str(rule["id"])

    async def consumer_kill(self, _: ShopClient, __: float) -> str:
        """SIGKILL to the campaign's replica of one consumer, a new one in its place: what it fetched and had not
        acknowledged comes again (after the consumer's ack wait)."""
        await self.rng.choice(self.consumers).kill_one()
        return ""

    async def poison(self, _: ShopClient, __: float) -> str:
        """An event no consumer can apply: an `order.approved` whose payload lacks every field but its order id."""
        if not self.nats_url:
            return "no NATS URL (SAGASHOP_NATS_URL unset and no server of up's in the data directory)"
        import nats

        event_id = uuid.uuid4().hex
        body = {"event_id": event_id, "event_type": POISON_TYPE, "event_version": 1,
                "occurred_at": now().isoformat(), "metadata": {"causation_id": "sagashop chaos: poison"},
                "payload": {"order_id": f"chaos-poison-{event_id[:8]}"}}
        client = await nats.connect(self.nats_url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            await client.jetstream(timeout=5).publish(self.streams.subject(POISON_TYPE), json.dumps(body).encode(),
                                                      stream=self.streams.events, headers={"Nats-Msg-Id": event_id})
        finally:
            await client.close()
        self.done.poison.append(event_id)
        return ""

    async def smtp_down(self, _: ShopClient, outage: float) -> str:
        """The sink killed and its port held `outage` seconds by a server that greets with 421 (service not
        available), as a mail server that is down for maintenance does; up's restart of the sink fails until the
        port is free, then it serves again."""
        if self.smtp_port is None:
            return "the shop sends mail to SAGASHOP_SMTP_URL, not to a sink of up's"
        port = self.smtp_port
        sink = next((p for name in self._pid_names() if (p := self._process(name)) and broker.listens(p.pid, port)),
                    None)
        if sink is None:
            return f"no process of up's listens on the SMTP port {port}"
        sink.kill()
        holder = await self._hold(port)
        if holder is None:
            return f"the sink came back on {port} before the campaign could hold the port"
        try:
            await asyncio.sleep(outage)
        finally:
            holder.close()
            await holder.wait_closed()
        async def back() -> bool:
            return any((p := self._process(n)) is not None and broker.listens(p.pid, port) for n in self._pid_names())

        await self._until(back, "the mail sink")
        return ""

    async def _hold(self, port: int) -> asyncio.Server | None:
        """A server on the sink's port answering 421 to every connection, once the killed sink's socket is gone."""
        async def refuse(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"421 4.3.2 mail service not available (sagashop chaos)\r\n")
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()

        for _ in range(20):
            try:
                return await asyncio.start_server(refuse, "127.0.0.1", port, reuse_address=True)
            except OSError:
                await asyncio.sleep(0.05)
        return None

    def _broker(self) -> psutil.Process | str:
        process = self._process(broker.NAME) if self.own_broker else None
        return process or "the shop's NATS server is not one `sagashop up` runs in this data directory"

    def _pid_names(self) -> list[str]:
        return [p.stem for p in self.run_dir.glob("*.pid")] if self.run_dir.is_dir() else []

    def _pid(self, name: str) -> int | None:
        try:
            return int((self.run_dir / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None

    def _process(self, name: str) -> psutil.Process | None:
        """The running process of that pid file, if it is this user's (a stale file names someone else's)."""
        pid = self._pid(name)
        try:
            process = psutil.Process(pid) if pid else None
            return process if process and process.uids().real == os.getuid() and process.is_running() else None
        except psutil.Error:
            return None

    async def _until(self, back: Callable[[], Awaitable[bool]], what: str) -> None:
        deadline = asyncio.get_running_loop().time() + BACK_WITHIN
        while not await back():
            if asyncio.get_running_loop().time() > deadline:
                self.done.failures.append(f"{what} not back within {BACK_WITHIN:g}s")
                return
            await asyncio.sleep(0.2)
