"""Idempotency-Key at the gateway: a fast path and an in-flight guard in front of the orchestrator. The orchestrator
keeps every key durably (unique per user) and stays the guarantee; this store may forget a key, or be down, at any
time, and the request then simply goes on to the orchestrator.

Per user and key it holds the fingerprint of the body and, once known, the order id. The first request claims the
key; a repeat with another body is refused (409 idempotency_conflict); a repeat while the first is in flight waits
up to SAGASHOP_IDEMPOTENCY_WAIT_SECONDS for its order, then is told to come back (409 idempotency_in_progress)."""

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel

from sagashop.kit.errors import Conflict

from .stores import FailOpen

POLL_SECONDS = 0.05  # how often a waiting repeat looks for the first request's order
MAX_ENTRIES = 100_000  # in-process entries kept; the oldest are forgotten beyond (the orchestrator still knows)

# KEYS[1]: the key; ARGV: the entry, its lifetime in ms. Returns the entry held, or nil once it stored ARGV[1].
CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""


class InFlight(Conflict):
    code = "idempotency_in_progress"
    retry_after = 1


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    order_id: str = ""  # empty while the first request is in flight


class Entries(Protocol):
    async def claim(self, key: str, entry: Entry, ttl: float) -> Entry | None:
        """Stores `entry` unless `key` holds one; returns the one held (None: `entry` was stored)."""

    async def put(self, key: str, entry: Entry, ttl: float) -> None: ...

    async def drop(self, key: str) -> None: ...


class MemoryEntries:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.entries: dict[str, tuple[Entry, float]] = {}  # key -> (entry, expires at)

    async def claim(self, key: str, entry: Entry, ttl: float) -> Entry | None:
        held = self.entries.get(key)
        if held is not None and held[1] > self.clock():
            return held[0]
        self._store(key, entry, ttl)
        return None

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        self._store(key, entry, ttl)

    async def drop(self, key: str) -> None:
        self.entries.pop(key, None)

    def _store(self, key: str, entry: Entry, ttl: float) -> None:
        now = self.clock()
        self.entries.pop(key, None)  # re-inserted last: the dict stays in order of writing
        self.entries[key] = (entry, now + ttl)
        if len(self.entries) > MAX_ENTRIES:
            live = [(k, held) for k, held in self.entries.items() if held[1] > now]
            self.entries = dict(live[-MAX_ENTRIES // 2:])


class RedisEntries:
    def __init__(self, client: aioredis.Redis, prefix: str = "sagashop:idempotency:") -> None:
        self.client, self.prefix, self.script = client, prefix, client.register_script(CLAIM)
        self.fail_open = FailOpen("idempotency")

    async def claim(self, key: str, entry: Entry, ttl: float) -> Entry | None:
        async def call() -> Entry | None:
            held = await self.script(keys=[self.prefix + key], args=[json.dumps(asdict(entry)), int(ttl * 1000)])
            return Entry(**json.loads(held)) if held else None

        return await self.fail_open.run(call, None)

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        await self.fail_open.run(lambda: self.client.set(self.prefix + key, json.dumps(asdict(entry)),
                                                         px=int(ttl * 1000)), None)

    async def drop(self, key: str) -> None:
        await self.fail_open.run(lambda: self.client.delete(self.prefix + key), None)


def fingerprint(body: BaseModel) -> str:
    """The hash of the body's canonical JSON: what makes two requests with one key the same order."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Claim:
    order_id: str = ""  # the order of an earlier request with the key; the block sets the one it got


class Idempotency:
    def __init__(self, entries: Entries, ttl: float, wait: float) -> None:
        self.entries, self.ttl, self.wait = entries, ttl, wait

    @asynccontextmanager
    async def keyed(self, user_id: str, key: str | None, body: BaseModel, lease: float) -> AsyncIterator[Claim]:
        """Holds `key` of `user_id` while the block runs (for at most `lease` seconds, should this process die),
        then keeps the order id the block set for the TTL; a block that ends without one (it failed) lets the
        key go for a retry. Without a key the block just runs."""
        if key is None:
            yield Claim()
            return
        scope, mark = f"{user_id}:{key}", fingerprint(body)
        claim = Claim(await self._claim(scope, mark, lease))
        try:
            yield claim
        finally:
            if claim.order_id:
                await self.entries.put(scope, Entry(mark, claim.order_id), self.ttl)
            else:  # the block failed before it had an order: the key is free for a retry
                await self.entries.drop(scope)

    async def _claim(self, scope: str, mark: str, lease: float) -> str:
        """'' once this request holds the key; the order id of an earlier request with it otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while (held := await self.entries.claim(scope, Entry(mark), lease)) is not None:
            if held.fingerprint != mark:
                raise Conflict("this Idempotency-Key was used for another order", code="idempotency_conflict")
            if held.order_id:
                return held.order_id
            if loop.time() >= deadline:
                raise InFlight("a request with this Idempotency-Key is still in flight; try again shortly")
            await asyncio.sleep(POLL_SECONDS)
        return ""
