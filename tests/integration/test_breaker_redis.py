"""Breakers sharing their state in the real Redis, as the replicas of one service do."""

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from pybreaker import CircuitBreakerError
from redis.backoff import NoBackoff
from redis.retry import Retry

from sagashop.kit.breaker import Breaker
from tools.local.parts import free_port

pytestmark = pytest.mark.redis

# Keeps the Redis server busy (it serves one command at a time) for ARGV[1] seconds; DEBUG SLEEP is often disabled.
BUSY = """local t = redis.call('TIME'); local stop = t[1] * 1000000 + t[2] + ARGV[1] * 1000000
repeat local now = redis.call('TIME') until now[1] * 1000000 + now[2] >= stop"""


class Transient(Exception):
    pass


@pytest.fixture
def admin(redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server, socket_timeout=3)
    yield client
    client.close()


@pytest.fixture
def name(admin: redis.Redis) -> Iterator[str]:
    """A breaker name of this run's own, its keys deleted afterwards."""
    name = f"test-{uuid.uuid4().hex}"
    yield name
    keys = list(admin.scan_iter(f"sagashop:breaker:*:{name}:*"))
    if keys:
        admin.delete(*keys)


SYNC_EVERY = 0.1  # a replica's copy of the shared state is this old at most


def replica(name: str, redis_url: str, sync_every: float = SYNC_EVERY, caller: str = "gateway") -> Breaker:
    """A replica of `caller` with its breaker of the callee `name`."""
    return Breaker(name, caller=caller, counts=lambda e: isinstance(e, Transient), fail_max=2, reset_timeout=10,
                   redis_url=redis_url, sync_every=sync_every)


async def fail(b: Breaker) -> None:
    with pytest.raises(Transient):
        async with b.guard():
            raise Transient()


async def test_tripping_one_replica_makes_the_other_fail_fast(redis_server: str, name: str):
    a, b = replica(name, redis_server), replica(name, redis_server)
    await fail(a)
    await fail(a)

    ran = False
    with pytest.raises(CircuitBreakerError):
        async with b.guard():
            ran = True
    assert not ran
    assert b.state == "open"


async def runs(b: Breaker) -> bool:
    """Whether a call gets to run, or fails fast."""
    try:
        async with b.guard():
            return True
    except CircuitBreakerError:
        return False


async def test_a_callee_tripped_by_one_part_stays_closed_for_another_part(redis_server: str, name: str):
    gateway, other_gateway = replica(name, redis_server), replica(name, redis_server)
    orchestrator = replica(name, redis_server, caller="orchestrator")
    await fail(gateway)
    await fail(gateway)
    await asyncio.sleep(SYNC_EVERY * 1.5)

    assert (await runs(other_gateway), await runs(orchestrator)) == (False, True)
    assert (other_gateway.state, orchestrator.state, orchestrator.failures) == ("open", "closed", 0)


async def test_failures_seen_by_two_replicas_add_up(redis_server: str, name: str):
    a, b = replica(name, redis_server), replica(name, redis_server)
    await fail(a)
    await fail(b)
    assert (a.state, b.state) == ("closed", "open")
    await asyncio.sleep(SYNC_EVERY * 1.5)  # a's copy is out of date by then
    with pytest.raises(CircuitBreakerError):
        async with a.guard():
            pass


async def test_calls_to_a_healthy_dependency_make_no_redis_round_trips_and_a_failure_is_shared_at_once(
        redis_server: str, name: str):
    b = replica(name, redis_server, sync_every=30)
    async with b.guard():  # the first use sets the keys up and reads them
        pass
    client = b._pybreaker()[1].client  # noqa: SLF001 - the Redis client the breaker talks through
    sent: list[str] = []
    execute = client.execute_command
    client.execute_command = lambda *args, **kwargs: (sent.append(args[0]), execute(*args, **kwargs))[1]

    for _ in range(20):
        async with b.guard():
            pass
    assert sent == []

    await fail(b)
    assert "INCRBY" in sent
    assert int(client.get(f"sagashop:breaker:gateway:{name}:pybreaker:fail_counter")) == 1


async def test_a_stalled_redis_does_not_block_the_event_loop(redis_server: str, name: str, admin: redis.Redis):
    b = replica(name, redis_server)
    async with b.guard():  # the first use sets the keys up
        pass
    await asyncio.sleep(SYNC_EVERY)  # the next call reads the shared state again
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    stall = asyncio.create_task(asyncio.to_thread(admin.eval, BUSY, 0, 0.3))
    await asyncio.sleep(0.05)  # Redis is busy from here
    started = time.monotonic()
    async with b.guard():
        pass
    took = time.monotonic() - started
    await stall
    ticker.cancel()

    assert took > 0.15  # the call did wait for Redis...
    assert max(gaps) < 0.1  # ...while the loop kept running


async def test_when_redis_goes_away_a_replica_keeps_to_its_last_copy_and_counts_failures_itself(
        redis_server: str, name: str):
    b = replica(name, redis_server)
    await fail(b)
    closed = free_port()  # nothing listens there
    storage = b._pybreaker()[1]  # noqa: SLF001 - its storage, to cut it off from Redis
    storage.client = redis.Redis(port=closed, decode_responses=True, retry=Retry(NoBackoff(), 0))
    await asyncio.sleep(SYNC_EVERY * 1.5)  # the copy is out of date: the next call tries Redis first

    await fail(b)  # the second failure, counted here, opens it
    assert b.state == "open"
    with pytest.raises(CircuitBreakerError):
        async with b.guard():
            pass
