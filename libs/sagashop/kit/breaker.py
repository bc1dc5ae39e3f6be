"""A circuit breaker per dependency: pybreaker's counting and transitions, its state in memory or shared by the
replicas in Redis (breakerstorage.py), made safe for asyncio: one trial call when half-open, cancellations never
counted, the caller's own error re-raised, and Redis I/O kept off the event loop. Shared in Redis, a breaker reads the
state from a copy at most `sync_every` seconds old, so a call to a healthy dependency costs no Redis round trip at
all."""

import asyncio
import logging
import threading
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
)

from .breakerstorage import SharedStorage

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
    error is an answer, like a success. With `redis_url`, the replicas of the `caller` share the state under the
    caller's and the breaker's names, and another part's breaker of the same callee stays its own: timeouts only
    the gateway sees (a flood of its reads, its own CPU starved) never open the circuit the sagas' steps use
    (`opened_at` is kept there in whole seconds, so the open time may be up to 1 s short); a replica sees
    what the others did within `sync_every` seconds."""

    def __init__(self, name: str, *, caller: str, counts: Callable[[BaseException], bool], fail_max: int = 5,
                 reset_timeout: float = 10.0, redis_url: str | None = None, sync_every: float = 0.5) -> None:
        self.name, self.caller, self._counts, self._redis_url = name, caller, counts, redis_url
        self._sync_every = sync_every
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
        return SharedStorage.at(self._redis_url, namespace=f"sagashop:breaker:{self.caller}:{self.name}",
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
