"""The gateway's Idempotency-Key guard, on entries in this process and in the real Redis (its own key prefix)."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from sagashop.kit.errors import Conflict
from services.gateway import idempotency
from services.gateway.idempotency import Entry, Idempotency, InFlight, MemoryEntries, RedisEntries
from services.gateway.schemas import OperatorAction
from services.gateway.stores import redis_client
from tests.conftest import redis_scratch
from tools.local.parts import free_port

BODY, OTHER = OperatorAction(reason="one"), OperatorAction(reason="two")


@pytest.fixture(params=["memory", "redis"])
async def entries(request: pytest.FixtureRequest) -> AsyncIterator[idempotency.Entries]:
    if request.param == "memory":
        yield MemoryEntries()
        return
    async with redis_scratch(request.getfixturevalue("redis_server")) as (client, prefix):
        yield RedisEntries(client, prefix=prefix)


async def place(keys: Idempotency, order_id: str, key: str | None = "k1", body: OperatorAction = BODY,
                user: str = "u1", seconds: float = 0.0) -> str:
    """What the orders route does: an earlier order of the key, or a new one after `seconds` of checkout."""
    async with keys.keyed(user, key, body, lease=5) as claim:
        if claim.order_id:
            return claim.order_id
        await asyncio.sleep(seconds)
        claim.order_id = order_id
    return order_id


async def test_a_repeated_key_gets_the_first_order_and_another_body_is_a_conflict(entries):
    keys = Idempotency(entries, ttl=60, wait=0.5)
    assert await place(keys, "o1") == "o1"
    assert await place(keys, "o2") == "o1"
    with pytest.raises(Conflict) as refused:
        await place(keys, "o3", body=OTHER)
    assert refused.value.code == "idempotency_conflict"


async def test_keys_are_per_user_and_requests_without_one_are_never_held(entries):
    keys = Idempotency(entries, ttl=60, wait=0.5)
    assert await place(keys, "o1", user="ada") == "o1"
    assert await place(keys, "o2", user="bob") == "o2"
    assert await place(keys, "o3", key=None) == "o3"
    assert await place(keys, "o4", key=None) == "o4"


async def test_concurrent_duplicates_run_the_checkout_once_and_all_get_its_order(entries):
    keys = Idempotency(entries, ttl=60, wait=2.0)
    orders = await asyncio.gather(*(place(keys, f"o{i}", seconds=0.2) for i in range(5)))
    assert len(set(orders)) == 1


async def test_a_duplicate_that_outwaits_its_patience_is_told_the_first_is_in_flight(entries):
    keys = Idempotency(entries, ttl=60, wait=0.1)
    first = asyncio.create_task(place(keys, "o1", seconds=0.5))
    await asyncio.sleep(0.05)
    with pytest.raises(InFlight) as told:
        await place(keys, "o2")
    assert (told.value.code, told.value.retry_after) == ("idempotency_in_progress", 1)
    assert await first == "o1"


async def test_a_failed_checkout_lets_the_key_go_for_a_retry(entries):
    keys = Idempotency(entries, ttl=60, wait=0.1)
    with pytest.raises(RuntimeError):
        async with keys.keyed("u1", "k1", BODY, lease=5):
            raise RuntimeError("the orchestrator is down")
    assert await place(keys, "o2") == "o2"


async def test_an_entry_is_forgotten_after_its_time(entries):
    await entries.put("u1:k1", Entry("f", "o1"), ttl=0.2)
    assert await entries.claim("u1:k1", Entry("f"), ttl=5) == Entry("f", "o1")
    await asyncio.sleep(0.3)
    assert await entries.claim("u1:k1", Entry("g"), ttl=5) is None


async def test_the_oldest_entries_make_room_when_there_are_too_many(monkeypatch):
    monkeypatch.setattr(idempotency, "MAX_ENTRIES", 4)
    entries = MemoryEntries()
    for i in range(5):
        await entries.put(f"k{i}", Entry("f", f"o{i}"), ttl=60)
    assert list(entries.entries) == ["k3", "k4"]


async def test_with_redis_down_the_request_goes_on_to_the_orchestrator():
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    keys = Idempotency(RedisEntries(client), ttl=60, wait=0.1)
    assert await place(keys, "o1") == "o1"
    assert await place(keys, "o2") == "o2"  # the orchestrator, holding the key durably, answers o1 here
    await client.aclose()
