"""The state of a circuit breaker shared by the replicas of a service in Redis, on pybreaker's storage interface."""

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
from pybreaker import STATE_CLOSED, CircuitBreakerStorage
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


class SharedStorage(CircuitBreakerStorage):
    """pybreaker's state in Redis, shared by the replicas of a service under `<namespace>:pybreaker:<key>` (the
    keys of pybreaker's own Redis storage). Read from a copy refreshed (one MGET) once it is `sync_every` seconds
    old; every write goes to Redis and into the copy, and a failure counter already at zero is not written again.
    Redis unreachable: reads use the last copy, failures are counted here, and writes are logged and dropped."""

    KEYS = ("state", "fail_counter", "success_counter", "opened_at")
    # opened_at only moves forward when two replicas open the circuit at once
    SET_IF_LATER = ("local was = tonumber(redis.call('GET', KEYS[1])) "
                    "if not was or tonumber(ARGV[1]) > was then redis.call('SET', KEYS[1], ARGV[1]) end")

    def __init__(self, client: redis.Redis, *, namespace: str, sync_every: float) -> None:
        super().__init__("redis")
        self.client, self.namespace, self.sync_every = client, namespace, sync_every
        self.keys = {key: f"{namespace}:pybreaker:{key}" for key in self.KEYS}
        self.read_at = float("-inf")
        self.copy: dict[str, Any] = {"state": STATE_CLOSED, "fail_counter": 0, "success_counter": 0, "opened_at": None}
        self._set_up()  # raises RedisError if Redis is unreachable: the breaker is then made on a later call

    @classmethod
    def at(cls, redis_url: str, *, namespace: str, sync_every: float) -> "SharedStorage":
        """On its own client of the Redis at `redis_url`. No retries within a call (redis-py's default backs off for
        seconds): a breaker step waits for Redis at most the timeouts, and the next step tries again."""
        client = redis.Redis.from_url(redis_url, decode_responses=True, retry=Retry(NoBackoff(), 0),
                                      socket_timeout=0.5, socket_connect_timeout=0.5)
        return cls(client, namespace=namespace, sync_every=sync_every)

    def _set_up(self) -> None:
        """Closed with nothing counted, unless another replica set the keys up already."""
        with self.client.pipeline(transaction=False) as pipe:
            for key, value in (("fail_counter", 0), ("success_counter", 0), ("state", STATE_CLOSED)):
                pipe.setnx(self.keys[key], value)
            pipe.execute()

    def fresh(self) -> bool:
        return time.monotonic() - self.read_at < self.sync_every

    def _read(self, key: str) -> Any:
        if not self.fresh():
            try:
                state, failures, successes, opened_at = self.client.mget(list(self.keys.values()))
                if state is None:  # the keys are gone (Redis restarted): start again closed
                    self._set_up()
            except redis.RedisError as e:
                log.warning("breaker %s: Redis unreachable (%s); using the last copy", self.namespace, e)
                return self.copy[key]
            self.copy = {"state": state or STATE_CLOSED, "fail_counter": int(failures or 0),
                         "success_counter": int(successes or 0),
                         "opened_at": datetime.fromtimestamp(int(opened_at), UTC) if opened_at else None}
            self.read_at = time.monotonic()
        return self.copy[key]

    def _write(self, key: str, send: Callable[[], Any]) -> Any:
        try:
            return send()
        except redis.RedisError as e:
            log.warning("breaker %s: Redis unreachable (%s); %s not shared", self.namespace, e, key)
            return None

    @property
    def state(self) -> str:
        return str(self._read("state"))

    @state.setter
    def state(self, state: str) -> None:
        self._write("state", lambda: self.client.set(self.keys["state"], str(state)))
        self.copy["state"] = str(state)

    @property
    def counter(self) -> int:
        return int(self._read("fail_counter"))

    @property
    def success_counter(self) -> int:
        return int(self._read("success_counter"))

    @property
    def opened_at(self) -> datetime | None:
        at: datetime | None = self._read("opened_at")
        return at

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        at = int(now.timestamp())  # whole seconds, as pybreaker's own storage keeps it
        self._write("opened_at", lambda: self.client.eval(self.SET_IF_LATER, 1, self.keys["opened_at"], at))
        self.copy["opened_at"] = datetime.fromtimestamp(at, UTC)

    def increment_counter(self) -> None:
        self.copy["fail_counter"] = self._count("fail_counter")

    def increment_success_counter(self) -> None:
        self.copy["success_counter"] = self._count("success_counter")

    def reset_counter(self) -> None:
        if self.copy["fail_counter"] or not self.fresh():
            self._write("fail_counter", lambda: self.client.set(self.keys["fail_counter"], 0))
            self.copy["fail_counter"] = 0

    def reset_success_counter(self) -> None:
        self._write("success_counter", lambda: self.client.set(self.keys["success_counter"], 0))
        self.copy["success_counter"] = 0

    def _count(self, key: str) -> int:
        """The counter after adding one in Redis, or here if Redis is unreachable."""
        counted = self._write(key, lambda: self.client.incr(self.keys[key]))
        return self.copy[key] + 1 if counted is None else int(counted)
