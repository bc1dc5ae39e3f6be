"""One way to call another service: a long-lived channel, a deadline per attempt, a circuit breaker around each
attempt, retries of transient failures within an overall deadline, and failed calls turned into domain errors.
Each call is a client span (its context travels in the call's metadata); retries and rejections are span events."""

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from pybreaker import CircuitBreakerError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay, wait_random_exponential

from sagashop.v1 import faults_pb2_grpc

from . import telemetry
from .breaker import Breaker
from .callers import credential
from .calls import current_record
from .errors import Unavailable
from .status import ERROR_CODE, ROUTE, SERVED_BY, TRANSIENT, error_from, refused_on_purpose

StubT = TypeVar("StubT")
R = TypeVar("R")

CHANNEL_OPTIONS = [("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 0)]


def is_transient(error: BaseException) -> bool:
    """A failure of the callee, worth another try and counted by its breaker (a refusal on purpose is neither)."""
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in TRANSIENT and not refused_on_purpose(
        error.code(), _metadata_value(error.trailing_metadata(), ERROR_CODE))


def _worth_retrying(error: BaseException) -> bool:
    """A transient failure, or an open circuit: tried again after the same wait, never at once."""
    return is_transient(error) or isinstance(error, CircuitBreakerError)


def _note_retry(state: RetryCallState) -> None:
    """Counts a failed attempt that is about to be tried again, and leaves a span event for it."""
    if (record := current_record.get()) is not None:
        record.retries += 1
    error = state.outcome.exception() if state.outcome else None
    reason = error.code().name if isinstance(error, grpc.aio.AioRpcError) else type(error).__name__
    trace.get_current_span().add_event("retry", {"rpc.attempt": state.attempt_number, "error": reason})


class _PathRecorder:
    """Stands in for a channel while a generated stub is built: each of the stub's methods becomes its path."""

    def __getattr__(self, kind: str) -> Callable[..., str]:  # unary_unary, unary_stream, ...
        return lambda path, *args, **kwargs: path


def method_paths(stub: Any) -> dict[int, str]:
    """id of each of a stub's callables -> its method's path, `/package.Service/Method`."""
    recorded = vars(type(stub)(_PathRecorder()))
    return {id(getattr(stub, name)): path for name, path in recorded.items()}


def _metadata_value(metadata: Any, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return str(v)
    return None


class Dependency(Generic[StubT]):
    """A service as one caller sees it. With `route`, every call carries `x-sagashop-route: <route>`, so the
    mesh sends it to that version of the service (a saga pinned to a part's canary stays on it), and a version
    other than v1 has a circuit breaker of its own (`<service>@<route>`)."""

    def __init__(self, name: str, address: str, stub: Callable[[grpc.aio.Channel], StubT],
                 *, caller: str, secret: str | None, attempt_timeout: float = 2.0, fail_max: int = 5,
                 reset_timeout: float = 10.0, redis_url: str | None = None, route: str | None = None) -> None:
        """`caller`: the part calling (its replicas share the breaker of this service, no other part does);
        `secret`: the internal secret its calls are signed with (kit.callers)."""
        self.name, self.address, self.attempt_timeout, self.route = name, address, attempt_timeout, route
        self.metadata = (*credential(secret, caller), *(((ROUTE, route),) if route else ()))
        self.breaker = Breaker(name if route in (None, "v1") else f"{name}@{route}", caller=caller,
                               counts=is_transient, fail_max=fail_max, reset_timeout=reset_timeout, redis_url=redis_url)
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = stub(self.channel)
        self.faults = faults_pb2_grpc.FaultServiceStub(self.channel)  # every part serves its fault rules
        self.paths = method_paths(self.stub) | method_paths(self.faults)

    async def call(self, rpc: Callable[..., Any], request: Any, *, within: float = 0.0,
                   timeout: float | None = None) -> Any:
        """Calls `rpc`; retries UNAVAILABLE/DEADLINE_EXCEEDED/RESOURCE_EXHAUSTED with jittered backoff until
        `within` seconds have passed (0: one attempt); an open circuit fails an attempt without calling.
        Raises the DomainError the answer stands for."""
        timeout = timeout or self.attempt_timeout
        started = time.monotonic()
        try:
            try:  # the first attempt on its own: most calls need no other, and setting up a retry loop is not free
                return await self._guarded(rpc, request, timeout)
            except Exception as first:
                if within <= 0 or not _worth_retrying(first):
                    raise
                return await self._retried(rpc, request, timeout, first, within - (time.monotonic() - started))
        except grpc.aio.AioRpcError as e:
            raise error_from(e.code(), e.details() or "", _metadata_value(e.trailing_metadata(), ERROR_CODE),
                             self.name) from e
        except CircuitBreakerError as e:
            raise Unavailable(f"{self.name} is failing: {e}", code=f"{self.name}_unavailable") from e

    async def _retried(self, rpc: Callable[..., Any], request: Any, timeout: float, first: Exception,
                       left: float) -> Any:
        """The attempts after a first one that failed with `first`, until `left` seconds have passed. The loop's
        own first attempt is that failure (so it is counted, and waited on, like any other)."""
        failed: Exception | None = first
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_worth_retrying), reraise=True, before_sleep=_note_retry,
            wait=wait_random_exponential(multiplier=0.05, max=1.0), stop=stop_after_delay(max(left, 0.0)),
        ):
            with attempt:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                return await self._guarded(rpc, request, timeout)
        raise AssertionError("unreachable: reraise=True")

    async def _guarded(self, rpc: Callable[..., Any], request: Any, timeout: float) -> Any:
        """One attempt, through the circuit breaker; a rejection leaves a span event."""
        try:
            async with self.breaker.guard():
                return await self._attempt(rpc, request, timeout)
        except CircuitBreakerError as e:
            trace.get_current_span().add_event("circuit breaker rejected", {"dependency": self.breaker.name,
                                                                            "error": str(e)})
            raise

    async def _attempt(self, rpc: Callable[..., Any], request: Any, timeout: float) -> Any:
        """One call, a client span around it."""
        record = current_record.get()
        if record is not None:
            record.attempts += 1
        if (path := self.paths.get(id(rpc))) is None:
            raise TypeError(f"{rpc!r} is not a method of {self.name}'s stubs (dep.stub, dep.faults)")
        with telemetry.rpc_span(path, trace.SpanKind.CLIENT) as span:
            call = rpc(request, timeout=timeout, metadata=telemetry.outgoing(self.metadata))
            try:
                reply = await call
            except grpc.aio.AioRpcError as e:
                telemetry.ended(span, e.code())
                raise
            finally:
                if record is not None:
                    record.handled_by = _metadata_value(await call.trailing_metadata(), SERVED_BY) or record.handled_by
            telemetry.ended(span, grpc.StatusCode.OK)
            return reply

    async def is_serving(self, timeout: float = 1.0) -> bool:
        """Whether the service answers its health check SERVING; with a route other than v1, the check carries the
        route header, so in a mesh it is that version that answers, and only an answer of that version counts."""
        check = health_pb2_grpc.HealthStub(self.channel).Check  # type: ignore[attr-defined]  # (its stubs lack it)
        try:
            call = check(health_pb2.HealthCheckRequest(service=""), timeout=timeout, metadata=self.metadata)
            reply: health_pb2.HealthCheckResponse = await call
            served_by = _metadata_value(await call.trailing_metadata(), SERVED_BY) or ""
        except grpc.aio.AioRpcError:
            return False
        elsewhere = self.route not in (None, "v1") and not served_by.endswith(f"@{self.route}")
        return reply.status == health_pb2.HealthCheckResponse.SERVING and not elsewhere

    async def close(self) -> None:
        await self.channel.close()
