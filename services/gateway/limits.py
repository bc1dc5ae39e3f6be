"""Rate limits: a token bucket per signed-in user and one per client address, kept in Redis (one atomic script
per request) or in this process; logins and sign-ups have buckets of their own. A request over a limit is answered
429 rate_limited with Retry-After; the operations endpoints are never limited."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from sagashop.kit.errors import TooMany, Unauthenticated

from .problems import problem
from .stores import FailOpen
from .tokens import VERIFIED, Principal, Tokens

EXEMPT = frozenset({"/healthz", "/readyz", "/readyz/self", "/metrics"})
ORDERS = "/v1/orders"  # POSTed to place an order
MAX_BUCKETS = 100_000  # in-process buckets kept before the full ones are forgotten

# KEYS: the buckets; ARGV: each one's tokens per second and burst, in turn. Each bucket with a token gives one;
# returns the longest wait in seconds ("0": every bucket gave a token).
TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local longest = 0
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local saved = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = math.min(burst, (tonumber(saved[1]) or burst) + math.max(0, now - (tonumber(saved[2]) or now)) * rate)
  local wait = 0
  if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('EXPIRE', key, math.ceil((burst - tokens) / rate) + 1)
  longest = math.max(longest, wait)
end
return tostring(longest)
"""


def client_address(scope: Scope) -> str:
    """The request's client address (from X-Forwarded-For when a trusted proxy sent it: uvicorn's doing)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


@dataclass(frozen=True)
class Limit:
    per_second: float
    burst: int

    @classmethod
    def per_minute(cls, count: int) -> "Limit":
        """`count` a minute, all of them at once if need be."""
        return cls(count / 60, count)

    @classmethod
    def per_hour(cls, count: int) -> "Limit":
        return cls(count / 3600, count)


class Buckets(Protocol):
    async def take(self, *wanted: tuple[str, Limit]) -> float:
        """Takes a token from the bucket of each (key, limit) that has one: 0.0 if every one had, else the seconds
        until the last of them has."""


class MemoryBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, tuple[float, float, float]] = {}  # key -> (tokens, at, full again at)

    async def take(self, *wanted: tuple[str, Limit]) -> float:
        now = self.clock()
        return max((self._take(key, limit, now) for key, limit in wanted), default=0.0)

    def _take(self, key: str, limit: Limit, now: float) -> float:
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

    async def take(self, *wanted: tuple[str, Limit]) -> float:
        """Every bucket in one script call: one round trip per request."""

        async def call() -> float:
            return float(await self.script(keys=[self.prefix + key for key, _ in wanted],
                                           args=[n for _, limit in wanted for n in (limit.per_second, limit.burst)]))

        return await self.fail_open.run(call, 0.0)


class RateLimits:
    """ASGI middleware: every request takes a token from its client address's bucket, and one from its user's
    if it carries a valid bearer token; an order placed, one from its user's bucket of orders too (all in one round
    trip to Redis)."""

    def __init__(self, app: ASGIApp, buckets: Buckets, tokens: Tokens, per_user: Limit, per_address: Limit,
                 orders_per_user: Limit) -> None:
        self.app, self.buckets, self.tokens = app, buckets, tokens
        self.per_user, self.per_address, self.orders_per_user = per_user, per_address, orders_per_user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in EXEMPT and (wait := await self.wait(scope)) > 0:
            response = problem(429, "rate_limited", "too many requests; try again after Retry-After seconds",
                               {"Retry-After": str(math.ceil(wait))})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def wait(self, scope: Scope) -> float:
        wanted = [(f"address:{client_address(scope)}", self.per_address)]
        if (user := self.user(Headers(scope=scope))) is not None:
            wanted.append((f"user:{user.user_id}", self.per_user))
            if scope["method"] == "POST" and scope["path"] == ORDERS:
                wanted.append((f"orders:{user.user_id}", self.orders_per_user))
            scope.setdefault("state", {})[VERIFIED] = user  # the route's dependency need not verify it again
        return await self.buckets.take(*wanted)

    def user(self, headers: Headers) -> Principal | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return self.tokens.verify(token.strip())
        except Unauthenticated:  # the route will say so; limited by address meanwhile
            return None


class SignInLimits:
    """Logins and sign-ups each cost a password hash: they take a token from a bucket of their client address and
    one of the account they name, so neither one address nor many addresses guessing one account's password get
    more than their share."""

    def __init__(self, buckets: Buckets, per_address: Limit, per_account: Limit) -> None:
        self.buckets, self.per_address, self.per_account = buckets, per_address, per_account

    async def take(self, scope: Scope, email: str) -> None:
        """Raises TooMany (429 with Retry-After) when either bucket is empty."""
        wait = await self.buckets.take((f"sign-in:address:{client_address(scope)}", self.per_address),
                                       (f"sign-in:account:{email.strip().lower()}", self.per_account))
        if wait > 0:
            raise TooMany("too many logins or sign-ups; try again after Retry-After seconds",
                          retry_after=math.ceil(wait))
