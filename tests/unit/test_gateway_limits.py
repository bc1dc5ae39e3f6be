"""The gateway's token buckets, in this process and in the real Redis (its own key prefix), and failing open."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.gateway import limits
from services.gateway.limits import Limit, MemoryBuckets, RedisBuckets
from services.gateway.stores import redis_client
from tests.conftest import redis_scratch
from tools.local.parts import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def buckets(request: pytest.FixtureRequest) -> AsyncIterator[limits.Buckets]:
    if request.param == "memory":
        yield MemoryBuckets()
        return
    async with redis_scratch(request.getfixturevalue("redis_server")) as (client, prefix):
        yield RedisBuckets(client, prefix=prefix)


async def test_a_burst_goes_through_and_the_next_request_waits_for_a_token(buckets):
    limit = Limit(per_second=2, burst=3)
    assert [await buckets.take(("user:a", limit)) for _ in range(3)] == [0, 0, 0]
    wait = await buckets.take(("user:a", limit))
    assert 0.4 < wait <= 0.5  # one token every half second


async def test_each_key_has_its_own_bucket(buckets):
    limit = Limit(per_second=1, burst=1)
    assert await buckets.take(("user:a", limit)) == 0
    assert await buckets.take(("user:a", limit)) > 0
    assert await buckets.take(("user:b", limit)) == 0


async def test_a_bucket_refills_at_its_rate(buckets):
    limit = Limit(per_second=20, burst=1)
    assert await buckets.take(("address:10.0.0.1", limit)) == 0
    assert await buckets.take(("address:10.0.0.1", limit)) > 0
    await asyncio.sleep(0.06)  # a token every 50 ms
    assert await buckets.take(("address:10.0.0.1", limit)) == 0


async def test_several_buckets_are_taken_at_once_and_the_longest_wait_answers(buckets):
    address, user = ("address:10.0.0.9", Limit(per_second=1, burst=1)), ("user:c", Limit(per_second=4, burst=2))
    assert await buckets.take(address, user) == 0  # one token from each
    wait = await buckets.take(address, user)  # the address is empty; the user still had one, and gives it
    assert 0.9 < wait <= 1.0
    assert await buckets.take(user) > 0  # so the user's bucket is empty now too
    assert await buckets.take(("user:d", user[1])) == 0  # another user's is untouched


async def test_a_refused_request_takes_no_token():
    clock = Clock()
    buckets = MemoryBuckets(clock)
    limit = Limit(per_second=1, burst=1)
    await buckets.take(("k", limit))
    for _ in range(5):
        assert await buckets.take(("k", limit)) > 0
    clock.now += 1.0
    assert await buckets.take(("k", limit)) == 0


async def test_full_buckets_are_forgotten_when_there_are_too_many(monkeypatch):
    monkeypatch.setattr(limits, "MAX_BUCKETS", 3)
    clock = Clock()
    buckets = MemoryBuckets(clock)
    limit = Limit(per_second=1, burst=2)
    for key in ("a", "b", "c"):
        await buckets.take((key, limit))
    clock.now += 5  # a, b and c are full again
    await buckets.take(("d", limit))
    await buckets.take(("e", limit))
    assert set(buckets.buckets) == {"d", "e"}


async def test_with_redis_down_every_request_goes_through_and_redis_is_left_alone_a_while():
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    buckets = RedisBuckets(client)
    limit = Limit(per_second=1, burst=1)
    assert [await buckets.take(("user:a", limit)) for _ in range(3)] == [0, 0, 0]
    assert buckets.fail_open.paused_until > 0
    await client.aclose()
