"""A circuit breaker per dependency: pybreaker's counting, transitions and storage (in memory, or in Redis shared by
replicas), made safe for asyncio: one trial call when half-open, cancellations never counted, the caller's own error
re-raised, and Redis I/O kept off the event loop. Shared in Redis, a breaker reads the state from a copy at most
`sync_every` seconds old, so a call to a healthy dependency costs no Redis round trip at all."""

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis
from pybreaker import (
    STATE_CLOSED,
    STATE_HALF_OPEN,
    STATE_OPEN,
    CircuitBreaker,
    CircuitBreakerError,
    CircuitBreakerStorage,
    CircuitMemoryStorage,
    CircuitRedisStorage,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

BREAKERS: dict[str, "Breaker"] = {}  # name -> the latest Breaker made with that name in this process


class _Failed(Exception):
    """What pybreaker is told of a counted failure, so it never re-raises, or replaces, the caller's own error."""


def _outcome(failed: bool) -> None:
    if failed:
        raise _Failed


class Breaker:
    """`async with breaker.guard(): await call()`. While open, raises CircuitBreakerError without running the call;
    after `reset_timeout` seconds one call of this process goes through as the trial (others fail fast meanwhile):
    its success closes the circuit, its failure re-opens it. Only errors `counts` accepts are failures; any other
    error is an answer, like a success. With `redis_url`, replicas share the state under the breaker's name
    (pybreaker keeps `opened_at` there in whole seconds, so the open time may be up to 1 s short); a replica sees
    what the others did within `sync_every` seconds."""

    def __init__(self, name: str, *, counts: Callable[[BaseException], bool], fail_max: int = 5,
                 reset_timeout: float = 10.0, redis_url: str | None = None, sync_every: float = 0.5) -> None:
        self.name, self._counts, self._redis_url, self._sync_every = name, counts, redis_url, sync_every
        self._limits = fail_max, reset_timeout
        self._made: tuple[CircuitBreaker, CircuitBreakerStorage] | None = None
        self._making = threading.Lock()
        self._trial = asyncio.Lock()
        self.state, self.failures = STATE_CLOSED, 0  # as this process last saw them
        BREAKERS[name] = self

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        clean = self._clean()  # closed, nothing counted: no admission, and a success has nothing to record
        trial = False if clean else await self._io(self._admit)
        if trial and self._trial.locked():
            raise CircuitBreakerError(f"circuit {self.name} is half-open and its trial call is under way")
        async with self._trial if trial else nullcontext():
            try:
                yield
            except (asyncio.CancelledError, TimeoutError):
                raise  # the caller gave up: neither a success nor a failure
            except Exception as error:
                if (counted := self._counts(error)) or not clean:
                    await self._io(self._record, counted)
                raise
            if not (clean and self._clean()):  # a failure counted meanwhile is reset by this success, as ever
                await self._io(self._record, False)

    async def _io(self, step: Callable[..., T], *args: Any) -> T | None:
        """Runs one pybreaker step: in a thread when it talks to Redis. A breaker whose Redis is unreachable
        lets calls through (None: no trial, nothing counted) rather than failing them: a breaker must never be
        the outage."""
        if self._redis_url is None:
            return self._step(step, *args)
        try:
            return await asyncio.to_thread(self._step, step, *args)
        except redis.RedisError as e:
            log.warning("breaker %s: its Redis is unreachable (%s); letting the call through", self.name, e)
            return None

    def _step(self, step: Callable[..., T], *args: Any) -> T:
        breaker, _ = self._pybreaker()
        try:
            return step(*args)
        finally:
            self.state, self.failures = breaker.current_state, breaker.fail_counter

    def _clean(self) -> bool:
        """Whether the circuit is closed with no failure counted, as seen here (from a fresh copy, if shared in
        Redis): a call then needs no admission, and a success changes nothing."""
        if self._made is None:
            return False
        storage = self._made[1]
        if isinstance(storage, SharedStorage):
            copy = storage.copy
            return storage.fresh() and copy["state"] == STATE_CLOSED and copy["fail_counter"] == 0
        return storage.state == STATE_CLOSED and storage.counter == 0

    def _pybreaker(self) -> tuple[CircuitBreaker, CircuitBreakerStorage]:
        """Made on first use, as making one on Redis already reads and writes there."""
        with self._making:
            if self._made is None:
                storage = self._storage()
                fail_max, reset_timeout = self._limits
                breaker = CircuitBreaker(fail_max, reset_timeout, state_storage=storage, name=self.name)
                self._made = breaker, storage
            return self._made

    def _storage(self) -> CircuitBreakerStorage:
        if self._redis_url is None:
            return CircuitMemoryStorage(STATE_CLOSED)
        client = redis.Redis.from_url(self._redis_url, decode_responses=False,  # pybreaker decodes bytes itself
                                      socket_timeout=0.5, socket_connect_timeout=0.5)
        return SharedStorage(STATE_CLOSED, client, namespace=f"sagashop:breaker:{self.name}",
                             sync_every=self._sync_every)

    def _admit(self) -> bool:
        """Whether the next call is the half-open trial; raises CircuitBreakerError while the circuit is open."""
        breaker, storage = self._pybreaker()
        state = breaker.current_state
        if state == STATE_OPEN:
            opened_at = storage.opened_at
            if opened_at and datetime.now(UTC) < opened_at + timedelta(seconds=breaker.reset_timeout):
                raise CircuitBreakerError(f"circuit {self.name} is open")
            breaker.half_open()
            return True
        return state == STATE_HALF_OPEN

    def _record(self, failed: bool) -> None:
        """Lets pybreaker count the outcome, and trip or close. It re-raises a failure, and raises
        CircuitBreakerError for an outcome arriving after another call opened the circuit: both are ignored."""
        with suppress(_Failed, CircuitBreakerError):
            self._pybreaker()[0].call(_outcome, failed)


class SharedStorage(CircuitRedisStorage):
    """pybreaker's Redis storage, read from a copy refreshed (one MGET) once it is `sync_every` seconds old; every
    write goes to Redis and into the copy. A failure counter already at zero is not written again."""

    KEYS = ("state", "fail_counter", "success_counter", "opened_at")

    def __init__(self, state: str, client: redis.Redis, *, namespace: str, sync_every: float) -> None:
        self.sync_every, self.read_at = sync_every, float("-inf")
        self.copy: dict[str, Any] = {"state": state, "fail_counter": 0, "success_counter": 0, "opened_at": None}
        super().__init__(state, client, namespace=namespace)

    def fresh(self) -> bool:
        return time.monotonic() - self.read_at < self.sync_every

    def _read(self, key: str) -> Any:
        if not self.fresh():
            try:
                values = self._redis.mget([self._namespace(k) for k in self.KEYS])
            except redis.RedisError as e:
                log.warning("breaker %s: Redis unreachable (%s); using the last copy", self._namespace_name, e)
                return self.copy[key]
            if values[0] is None:  # the keys are gone (Redis restarted): start again closed
                self._initialize_redis_state(STATE_CLOSED)
            state, failures, successes, opened_at = values
            self.copy = {"state": state.decode() if state else STATE_CLOSED, "fail_counter": int(failures or 0),
                         "success_counter": int(successes or 0),
                         "opened_at": datetime.fromtimestamp(int(opened_at), UTC) if opened_at else None}
            self.read_at = time.monotonic()
        return self.copy[key]

    @property
    def state(self) -> str:
        return str(self._read("state"))

    @state.setter
    def state(self, state: str) -> None:
        CircuitRedisStorage.state.fset(self, state)  # type: ignore[attr-defined]
        self.copy["state"] = str(state)

    @property
    def counter(self) -> int:
        return int(self._read("fail_counter"))

    @property
    def success_counter(self) -> int:
        return int(self._read("success_counter"))

    @property
    def opened_at(self) -> datetime | None:
        return self._read("opened_at")

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        CircuitRedisStorage.opened_at.fset(self, now)  # type: ignore[attr-defined]
        self.copy["opened_at"] = now.replace(microsecond=0)

    def increment_counter(self) -> None:
        self.copy["fail_counter"] = self._count("fail_counter", self.copy["fail_counter"])

    def increment_success_counter(self) -> None:
        self.copy["success_counter"] = self._count("success_counter", self.copy["success_counter"])

    def reset_counter(self) -> None:
        if self.copy["fail_counter"] or not self.fresh():
            super().reset_counter()
            self.copy["fail_counter"] = 0

    def reset_success_counter(self) -> None:
        super().reset_success_counter()
        self.copy["success_counter"] = 0

    def _count(self, key: str, last: int) -> int:
        try:
            return int(self._redis.incr(self._namespace(key)))
        except redis.RedisError as e:
            log.warning("breaker %s: Redis unreachable (%s); counting here", self._namespace_name, e)
            return last + 1
