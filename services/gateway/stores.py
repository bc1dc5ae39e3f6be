"""Where the gateway keeps what its replicas share (idempotency keys, rate-limit buckets): Redis when
SAGASHOP_REDIS_URL is set, this process otherwise. Redis is a help, never a need: a failed call is logged and
answered as if the store had nothing, and Redis is left alone for a few seconds after a failure, so a dead server
costs no request its timeout."""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")
PAUSE_SECONDS = 5.0  # how long Redis is left alone after it failed a call
TIMEOUT_SECONDS = 0.25  # per Redis command: the stores are a fast path, not worth waiting for


def redis_client(url: str) -> aioredis.Redis:
    """A client that fails fast: short timeouts and no retries (the caller falls back instead)."""
    return aioredis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS,
                                   retry=Retry(NoBackoff(), 0))


class FailOpen:
    """Runs one store's Redis calls; a failed call, or any call while paused after one, gives `fallback`."""

    def __init__(self, store: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.clock = store, clock
        self.paused_until = 0.0

    async def run(self, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        if self.clock() < self.paused_until:
            return fallback
        try:
            return await call()
        except (RedisError, OSError) as e:
            self.paused_until = self.clock() + PAUSE_SECONDS
            log.warning("the %s store cannot reach Redis (%s): going on without it for %.0f s",
                        self.store, e, PAUSE_SECONDS)
            return fallback
