"""Rate limits: a token bucket per signed-in user and one per client address, kept in Redis (one atomic script
per request) or in this process. A request over either limit is answered 429 rate_limited with Retry-After; the
operations endpoints are never limited."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from sagashop.kit.errors import Unauthenticated

from .problems import problem
from .stores import FailOpen
from .tokens import Tokens

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_BUCKETS = 100_000  # in-process buckets kept before the full ones are forgotten

# KEYS[1]: the bucket; ARGV: tokens per second, burst. Returns the seconds to wait ("0": a token was taken).
TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = math.min(burst, (tonumber(saved[1]) or burst) + math.max(0, now - (tonumber(saved[2]) or now)) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1)
return tostring(wait)
"""


@dataclass(frozen=True)
class Limit:
    per_second: float
    burst: int


class Buckets(Protocol):
    async def take(self, key: str, limit: Limit) -> float:
        """Takes a token from the bucket of `key`: 0.0 if there was one, else the seconds until there is."""


class MemoryBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, tuple[float, float, float]] = {}  # key -> (tokens, at, full again at)

    async def take(self, key: str, limit: Limit) -> float:
        now = self.clock()
        tokens, at, _ = self.buckets.get(key, (float(limit.burst), now, now))
        tokens = min(float(limit.burst), tokens + (now - at) * limit.per_second)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / limit.per_second
        tokens -= 0 if wait else 1
        self.buckets[key] = (tokens, now, now + (limit.burst - tokens) / limit.per_second)
        if len(self.buckets) > MAX_BUCKETS:
            self.buckets = {k: b for k, b in self.buckets.items() if b[2] > now}
        return wait


class RedisBuckets:
    def __init__(self, client: aioredis.Redis, prefix: str = "sagashop:rate:") -> None:
        self.prefix, self.script = prefix, client.register_script(TAKE)
        self.fail_open = FailOpen("rate-limit")

    async def take(self, key: str, limit: Limit) -> float:
        async def call() -> float:
            return float(await self.script(keys=[self.prefix + key], args=[limit.per_second, limit.burst]))

        return await self.fail_open.run(call, 0.0)


class RateLimits:
    """ASGI middleware: every request takes a token from its client address's bucket, and one from its user's
    if it carries a valid bearer token."""

    def __init__(self, app: ASGIApp, buckets: Buckets, tokens: Tokens, per_user: Limit, per_address: Limit) -> None:
        self.app, self.buckets, self.tokens = app, buckets, tokens
        self.per_user, self.per_address = per_user, per_address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in EXEMPT and (wait := await self.wait(scope)) > 0:
            response = problem(429, "rate_limited", "too many requests; try again after Retry-After seconds",
                               {"Retry-After": str(math.ceil(wait))})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def wait(self, scope: Scope) -> float:
        client = scope.get("client")
        wait = await self.buckets.take(f"address:{client[0] if client else 'unknown'}", self.per_address)
        if (user_id := self.user_id(Headers(scope=scope))) is not None:
            wait = max(wait, await self.buckets.take(f"user:{user_id}", self.per_user))
        return wait

    def user_id(self, headers: Headers) -> str | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return self.tokens.verify(token.strip()).user_id
        except Unauthenticated:  # the route will say so; limited by address meanwhile
            return None
