"""The gateway's broker connection against a nats-server of the test's own: the catalog's events drop what they
name from the cache; while the broker is away the cache is off and the dead-letter routes' JetStream is
EventsUnavailable; once it is back the cache is on again, dropped whole (what happened meanwhile is unknown)."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import nats
import pytest

from sagashop.kit.settings import Settings
from services.gateway.catalog_cache import CatalogCache, MemoryGenerations, product
from services.gateway.events import Broker, EventsUnavailable
from tests.integration.test_relay import OwnNats, own_nats  # noqa: F401 - the fixture

STOCK = {"payload": {"order_id": "o1", "reservation_id": "r1", "lines": [{"sku": "LAMP", "quantity": 1}]}}


async def until(condition: Callable[[], bool], within: float = 10.0) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < within, "not within the bound"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def cached(cache: CatalogCache, sku: str) -> bool:
    held, _ = await cache.store.read(product(sku))
    return held is not None


async def test_events_drop_what_they_name_and_an_outage_turns_the_cache_off_then_on(own_nats: OwnNats):  # noqa: F811
    own_nats.start()
    settings = Settings(nats_url=own_nats.url, events_name=f"t{uuid.uuid4().hex[:10]}")
    cache = CatalogCache(MemoryGenerations(), ttl=60)
    broker = Broker(settings, cache)
    broker.start()
    try:
        await until(lambda: cache.serving)
        for sku in ("LAMP", "SOFA"):
            await cache.get(product(sku), lambda: asyncio.sleep(0, result="{}"))
        publisher = await nats.connect(own_nats.url)
        await publisher.publish(broker.streams.subject("stock.reserved"), json.dumps(STOCK).encode())
        await publisher.close()
        for _ in range(100):
            if not await cached(cache, "LAMP"):
                break
            await asyncio.sleep(0.02)
        assert (await cached(cache, "LAMP"), await cached(cache, "SOFA")) == (False, True)

        own_nats.stop()
        await until(lambda: not cache.serving, within=3)
        with pytest.raises(EventsUnavailable):
            async with broker.jetstream():
                pass

        epoch = cache.store.epoch  # type: ignore[attr-defined]
        own_nats.start()
        await until(lambda: cache.serving, within=15)
        assert cache.store.epoch > epoch and not await cached(cache, "SOFA")  # type: ignore[attr-defined]
        async with broker.jetstream() as js:
            assert (await js.stream_info(broker.streams.dead_letters)).state.messages == 0
    finally:
        await broker.close()
