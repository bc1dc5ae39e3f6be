"""The gateway's catalog cache, in this process and in the real Redis (its own key prefix): a read that began
before an invalidation never keeps what it read, and the cache answers only while its event subscription is live."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.gateway.catalog_cache import LIST, CatalogCache, Generations, MemoryGenerations, RedisGenerations, product
from services.gateway.events import skus_of
from services.gateway.stores import redis_client
from tests.conftest import redis_scratch
from tools.local.parts import free_port


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Generations]:
    if request.param == "memory":
        yield MemoryGenerations()
        return
    async with redis_scratch(request.getfixturevalue("redis_server")) as (client, prefix):
        yield RedisGenerations(client, prefix)


def serving(store: Generations, ttl: float = 60) -> CatalogCache:
    cache = CatalogCache(store, ttl)
    cache.serving = True
    return cache


class Inventory:
    """What the inventory answers for a product: `stock`, read as it is when a load begins."""

    def __init__(self) -> None:
        self.stock, self.loads = 5, 0

    async def load(self, slow: asyncio.Event | None = None) -> str:
        self.loads += 1
        seen = self.stock
        if slow is not None:
            await slow.wait()  # the answer is on its way while the change happens
        return f'{{"available": {seen}}}'


async def test_a_read_kept_is_answered_until_an_event_drops_it(store):
    cache, inventory = serving(store), Inventory()
    assert await cache.get(product("LAMP"), inventory.load) == '{"available": 5}'
    inventory.stock = 4
    assert await cache.get(product("LAMP"), inventory.load) == '{"available": 5}'  # kept
    await cache.invalidate(["LAMP"], "event")
    assert await cache.get(product("LAMP"), inventory.load) == '{"available": 4}'
    assert inventory.loads == 2


async def test_a_read_that_began_before_an_invalidation_does_not_keep_its_result(store):
    cache, inventory, answer = serving(store), Inventory(), asyncio.Event()
    stale = asyncio.create_task(cache.get(product("LAMP"), lambda: inventory.load(slow=answer)))
    await asyncio.sleep(0.05)  # the read has asked the inventory
    inventory.stock = 4
    await cache.invalidate(["LAMP"], "event")
    answer.set()
    assert await stale == '{"available": 5}'  # its caller gets what it read, as without a cache
    assert await cache.get(product("LAMP"), inventory.load) == '{"available": 4}'  # but no one after it


async def test_dropping_everything_stops_a_read_under_way_from_keeping_its_result(store):
    cache, inventory, answer = serving(store), Inventory(), asyncio.Event()
    stale = asyncio.create_task(cache.get(LIST, lambda: inventory.load(slow=answer)))
    await asyncio.sleep(0.05)
    inventory.stock = 4
    await cache.invalidate_all("subscription")
    answer.set()
    await stale
    assert await cache.get(LIST, inventory.load) == '{"available": 4}'


async def test_a_product_changed_drops_the_list_too_and_other_products_stay(store):
    cache, inventory = serving(store), Inventory()
    for key in (LIST, product("LAMP"), product("SOFA")):
        await cache.get(key, inventory.load)
    inventory.stock = 4
    await cache.invalidate(["LAMP"], "event")
    assert [await cache.get(key, inventory.load) for key in (LIST, product("LAMP"), product("SOFA"))] == [
        '{"available": 4}', '{"available": 4}', '{"available": 5}']


async def test_without_a_live_subscription_or_with_no_ttl_every_read_asks_the_inventory(store):
    for cache in (CatalogCache(store, ttl=60), serving(store, ttl=0)):
        inventory = Inventory()
        await cache.get(product("LAMP"), inventory.load)
        await cache.get(product("LAMP"), inventory.load)
        assert inventory.loads == 2


async def test_a_drop_redis_failed_is_made_before_any_read_uses_the_cache_again(redis_server):
    async with redis_scratch(redis_server) as (client, prefix):
        cache, inventory = serving(RedisGenerations(client, prefix)), Inventory()
        await cache.get(product("LAMP"), inventory.load)
        unreachable = redis_client(f"redis://127.0.0.1:{free_port()}")
        broken = CatalogCache(RedisGenerations(unreachable, prefix), 60)
        await broken.invalidate(["LAMP"], "event")  # Redis unreachable: the drop waits
        assert broken.pending
        await unreachable.aclose()
        broken.store = cache.store  # Redis answers again
        broken.serving, inventory.stock = True, 4
        assert await broken.get(product("LAMP"), inventory.load) == '{"available": 4}'
        assert not broken.pending


def test_the_skus_of_an_event_are_read_from_its_payload():
    assert skus_of(b'{"payload": {"sku": "LAMP", "available": 3}}') == {"LAMP"}
    assert skus_of(b'{"payload": {"order_id": "o1", "lines": [{"sku": "LAMP"}, {"sku": "MUG"}]}}') == {"LAMP", "MUG"}
    assert skus_of(b"not json") is None
    assert skus_of(b'{"payload": {"order_id": "o1"}}') is None
