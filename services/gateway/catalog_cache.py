"""The catalog cache: product reads (`GET /v1/products`, `GET /v1/products/{sku}`) kept for at most
SAGASHOP_CATALOG_CACHE_SECONDS, cache-aside, in Redis when SAGASHOP_REDIS_URL is set, in this process otherwise.

Freshness comes from the domain events, not the TTL: `product.changed` and `stock.*` drop the products they name
(and the list), and a product written through this gateway is dropped at once. A read that began before a drop
must not store what it read (it may be the old product): each key has a generation, raised by every drop, and a
read stores its result only if the generation is still the one it saw before it asked the inventory. A missed
event cannot be told apart from none, so the cache answers only while the event subscription is live (`serving`),
and the whole cache is dropped (its epoch raised) each time the subscription is made again.

Redis is a help, never a need (stores.FailOpen): a failed call is a miss that stores nothing. A drop that failed is
kept and tried again before any later read uses the cache, so a product is never served past its change."""

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter

from .stores import FailOpen

LIST = "list"  # the key of the whole list; a product's is `product(sku)`
MAX_ENTRIES = 10_000  # keys the in-process store holds; beyond, it starts over (a new epoch)
GENERATION_SECONDS = 86_400  # a Redis generation outlives any read by far, and is renewed by each drop
MAX_PENDING = 10_000  # drops waiting for Redis; beyond, the whole cache is dropped instead

HITS = Counter("sagashop_catalog_cache_hits_total", "product reads answered from the gateway's catalog cache")
MISSES = Counter("sagashop_catalog_cache_misses_total", "product reads that asked the inventory service")
INVALIDATIONS = Counter("sagashop_catalog_cache_invalidations_total", "keys dropped from the catalog cache, by "
                        "what dropped them: an event, a write through this gateway, or a new subscription (all)",
                        ["source"])

# KEYS: the value, its generation, the epoch; ARGV: the generation and epoch the read saw, the value, its TTL (ms)
STORE = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] and (redis.call('GET', KEYS[3]) or '0') == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'PX', ARGV[4])
end
return 0
"""


def product(sku: str) -> str:
    return f"sku:{sku}"


class Generations(Protocol):
    async def read(self, key: str) -> tuple[str | None, str]:
        """The value held for `key` (None: none), and the token a read that stores it must still find."""

    async def store(self, key: str, value: str, token: str, ttl: float) -> None:
        """Keeps `value` unless `key` was dropped since `token` was read."""

    async def drop(self, keys: Iterable[str]) -> bool:
        """Drops the keys and raises their generations; False if that failed (Redis)."""

    async def drop_all(self) -> bool: ...


class MemoryGenerations:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.values: dict[str, tuple[str, float]] = {}  # key -> (value, expires at)
        self.generations: dict[str, int] = {}
        self.epoch = 0

    def _token(self, key: str) -> str:
        return f"{self.epoch}.{self.generations.get(key, 0)}"

    async def read(self, key: str) -> tuple[str | None, str]:
        held = self.values.get(key)
        return (held[0] if held and held[1] > self.clock() else None), self._token(key)

    async def store(self, key: str, value: str, token: str, ttl: float) -> None:
        if token == self._token(key):
            if len(self.values) >= MAX_ENTRIES:
                await self.drop_all()
            else:
                self.values[key] = (value, self.clock() + ttl)

    async def drop(self, keys: Iterable[str]) -> bool:
        for key in keys:
            self.values.pop(key, None)
            self.generations[key] = self.generations.get(key, 0) + 1
        if len(self.generations) > MAX_ENTRIES:
            await self.drop_all()
        return True

    async def drop_all(self) -> bool:
        """A new epoch: every token read before it is stale, so the generations can start over too."""
        self.values.clear()
        self.generations.clear()
        self.epoch += 1
        return True


class RedisGenerations:
    """Per key `<prefix>v:<key>` ("<epoch>:<value>") and `<prefix>g:<key>`; `<prefix>epoch`. A value stored in an
    earlier epoch is not read."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client, self.prefix, self.script = client, prefix, client.register_script(STORE)
        self.fail_open = FailOpen("catalog cache")

    async def read(self, key: str) -> tuple[str | None, str]:
        async def call() -> tuple[str | None, str]:
            found = await self.client.mget(self.prefix + "epoch", self.prefix + "g:" + key, self.prefix + "v:" + key)
            epoch, generation, held = (b.decode() if isinstance(b, bytes) else b or "" for b in found)
            stored_in, _, value = held.partition(":")
            return (value if held and stored_in == (epoch or "0") else None), f"{generation or '0'}:{epoch or '0'}"

        return await self.fail_open.run(call, (None, ""))

    async def store(self, key: str, value: str, token: str, ttl: float) -> None:
        if not token:  # Redis failed the read: what it holds is unknown
            return
        generation, epoch = token.split(":")
        keys = [self.prefix + "v:" + key, self.prefix + "g:" + key, self.prefix + "epoch"]
        await self.fail_open.run(lambda: self.script(keys=keys, args=[generation, epoch, value, int(ttl * 1000)]),
                                 None)

    async def drop(self, keys: Iterable[str]) -> bool:
        async def call() -> bool:
            async with self.client.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.incr(self.prefix + "g:" + key)
                    pipe.expire(self.prefix + "g:" + key, GENERATION_SECONDS)
                    pipe.delete(self.prefix + "v:" + key)
                await pipe.execute()
            return True

        return await self.fail_open.run(call, False)

    async def drop_all(self) -> bool:
        async def call() -> bool:
            await self.client.incr(self.prefix + "epoch")
            return True

        return await self.fail_open.run(call, False)


class CatalogCache:
    def __init__(self, store: Generations, ttl: float) -> None:
        self.store, self.ttl = store, ttl
        self.serving = False  # set by the event subscription while it is live (events.py)
        self.pending: set[str] = set()  # keys whose drop failed: no read uses the cache until they are dropped
        self.all_pending = False
        self.asked = 0  # invalidations asked for, to tell one made while a drop was under way

    async def get(self, key: str, load: Callable[[], Awaitable[str]]) -> str:
        """The value of `key` (a model's JSON): the cached one, or `load()`'s, kept if no drop came meanwhile."""
        if self.ttl <= 0 or not self.serving or not await self._settled():
            MISSES.inc()
            return await load()
        held, token = await self.store.read(key)
        if held is not None:
            HITS.inc()
            return held
        MISSES.inc()
        value = await load()
        await self.store.store(key, value, token, self.ttl)
        return value

    async def invalidate(self, skus: Iterable[str], source: str) -> None:
        self.asked += 1
        keys = {*map(product, skus), LIST}
        INVALIDATIONS.labels(source).inc(len(keys))
        if not await self.store.drop(keys):
            self.pending |= keys
            self.all_pending = self.all_pending or len(self.pending) > MAX_PENDING

    async def invalidate_all(self, source: str) -> None:
        INVALIDATIONS.labels(source).inc()
        self.asked += 1
        self.all_pending = True
        await self._settled()

    async def _settled(self) -> bool:
        """Whether no failed drop is left (trying them again first). What failed while a drop was awaited stays."""
        if self.all_pending:
            asked = self.asked
            if await self.store.drop_all() and self.asked == asked:
                self.all_pending = False
                self.pending.clear()
        if self.pending and not self.all_pending:
            dropping = set(self.pending)
            if await self.store.drop(list(dropping)):
                self.pending -= dropping
        return not (self.pending or self.all_pending)
