"""The asyncio circuit breaker on its own, then inside a Dependency on a loopback port (no server beyond it)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pybreaker import CircuitBreakerError

from sagashop.kit.breaker import BREAKERS, Breaker
from sagashop.kit.calls import CallRecord, current_record
from sagashop.kit.errors import Rejected, TooMany, Unavailable
from sagashop.kit.grpcclient import Dependency
from tools.local.parts import free_port


class Transient(Exception):
    pass


class Refused(Exception):
    pass


def breaker(fail_max: int = 3, reset_timeout: float = 0.2) -> Breaker:
    return Breaker(f"test-{uuid.uuid4().hex[:8]}", caller="test", counts=lambda e: isinstance(e, Transient),
                   fail_max=fail_max, reset_timeout=reset_timeout)


async def fail(b: Breaker, error: Exception) -> None:
    with pytest.raises(type(error)):
        async with b.guard():
            raise error


async def trip(b: Breaker) -> None:
    for _ in range(3):
        await fail(b, Transient())
    assert b.state == "open"


async def ran_through(b: Breaker) -> bool:
    """Whether a call got to run; a fail-fast raises CircuitBreakerError before it does."""
    ran = False
    async with b.guard():
        ran = True
    return ran


async def test_it_opens_after_fail_max_transient_failures_and_then_fails_fast_without_calling():
    b = breaker()
    await fail(b, Transient())
    await fail(b, Transient())
    assert (b.state, b.failures) == ("closed", 2)

    await fail(b, Transient())
    assert b.state == "open"
    ran = False
    with pytest.raises(CircuitBreakerError):
        async with b.guard():
            ran = True
    assert not ran


async def test_a_success_resets_the_failures_counted_while_it_ran():
    b = breaker()
    assert await ran_through(b)  # the circuit is set up, closed and clean
    release = asyncio.Event()

    async def slow_success() -> None:
        async with b.guard():
            await release.wait()

    call = asyncio.create_task(slow_success())
    await asyncio.sleep(0)  # admitted on a clean circuit
    await fail(b, Transient())
    assert b.failures == 1
    release.set()
    await call
    assert (b.state, b.failures) == ("closed", 0)  # so two more failures do not open it
    await fail(b, Transient())
    await fail(b, Transient())
    assert b.state == "closed"


async def test_the_call_that_trips_it_raises_its_own_error():
    b = breaker()
    await fail(b, Transient())
    await fail(b, Transient())
    error = Transient("the real status")
    with pytest.raises(Transient) as raised:
        async with b.guard():
            raise error
    assert raised.value is error
    assert b.state == "open"


async def test_business_errors_are_neither_counted_nor_open_it():
    b = breaker()
    for _ in range(10):
        await fail(b, Refused())
    assert (b.state, b.failures) == ("closed", 0)


async def test_after_reset_timeout_one_trial_goes_through_while_ten_concurrent_callers_fail_fast():
    b = breaker()
    await trip(b)
    await asyncio.sleep(0.25)
    entered, release = asyncio.Event(), asyncio.Event()

    async def trial() -> None:
        async with b.guard():
            entered.set()
            await release.wait()

    trial_task = asyncio.create_task(trial())
    await asyncio.wait([trial_task, asyncio.create_task(entered.wait())], timeout=5,
                       return_when=asyncio.FIRST_COMPLETED)
    assert entered.is_set(), f"the trial call did not go through: {trial_task}"
    others = await asyncio.gather(*(ran_through(b) for _ in range(10)), return_exceptions=True)
    release.set()
    await trial_task

    assert all(isinstance(outcome, CircuitBreakerError) for outcome in others)
    assert b.state == "closed"


async def test_a_successful_trial_closes_it():
    b = breaker()
    await trip(b)
    await asyncio.sleep(0.25)
    assert await ran_through(b)
    assert (b.state, b.failures) == ("closed", 0)
    assert await ran_through(b)


async def test_a_failed_trial_reopens_it_with_its_own_error():
    b = breaker()
    await trip(b)
    await asyncio.sleep(0.25)
    error = Transient("still down")
    with pytest.raises(Transient) as raised:
        async with b.guard():
            raise error
    assert raised.value is error
    assert b.state == "open"
    with pytest.raises(CircuitBreakerError):
        await ran_through(b)


async def test_a_cancelled_call_is_not_counted_and_its_cancellation_propagates():
    b = breaker(fail_max=2)
    await fail(b, Transient())

    async def slow() -> None:
        async with b.guard():
            await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (b.state, b.failures) == ("closed", 1)


async def test_a_timed_out_call_is_not_counted_and_raises_timeout_error():
    b = breaker(fail_max=2)
    await fail(b, Transient())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01), b.guard():
            await asyncio.sleep(10)
    assert (b.state, b.failures) == ("closed", 1)


async def test_a_cancelled_trial_leaves_the_next_call_to_be_the_trial():
    b = breaker()
    await trip(b)
    await asyncio.sleep(0.25)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01), b.guard():
            await asyncio.sleep(10)
    assert b.state == "half-open"
    assert await ran_through(b)
    assert b.state == "closed"


async def test_every_breaker_of_the_process_is_listed_by_name():
    b = breaker()
    assert BREAKERS[b.name] is b


@pytest.fixture
async def dead() -> AsyncIterator[Dependency]:
    """A Dependency on a loopback port nobody listens on."""
    dep = Dependency(f"ghost{uuid.uuid4().hex[:6]}", f"127.0.0.1:{free_port()}", health_pb2_grpc.HealthStub,
                     caller="test", secret=None)
    yield dep
    await dep.close()


async def open_by_calling(dep: Dependency) -> None:
    for _ in range(5):
        with pytest.raises(Unavailable):
            await dep.call(dep.stub.Check, health_pb2.HealthCheckRequest())
    assert dep.breaker.state == "open"


async def test_a_dead_dependency_opens_its_breaker_and_then_fails_as_unavailable_without_calling(dead):
    await open_by_calling(dead)
    record = CallRecord()
    token = current_record.set(record)
    started = time.monotonic()
    with pytest.raises(Unavailable) as raised:
        await dead.call(dead.stub.Check, health_pb2.HealthCheckRequest())
    current_record.reset(token)

    assert raised.value.code == f"{dead.name}_unavailable"
    assert time.monotonic() - started < 0.1
    assert record.attempts == 0  # no network attempt


async def test_an_open_breaker_is_tried_again_after_waits_until_the_budget_is_spent(dead):
    await open_by_calling(dead)
    tries = 0
    guard = dead.breaker.guard

    def counted_guard():
        nonlocal tries
        tries += 1
        return guard()

    dead.breaker.guard = counted_guard  # type: ignore[method-assign]
    started = time.monotonic()
    with pytest.raises(Unavailable, match="circuit .* is open"):
        await dead.call(dead.stub.Check, health_pb2.HealthCheckRequest(), within=0.5)

    assert time.monotonic() - started >= 0.5
    assert 2 <= tries < 40  # backed off between fast failures, not a busy loop


class RefusingHealth(health.aio.HealthServicer):
    """Refuses every call as `status`, with `error_code` in the trailers as our servers say why."""

    def __init__(self, status: grpc.StatusCode, error_code: str) -> None:
        super().__init__()
        self.status, self.error_code, self.calls = status, error_code, 0

    async def Check(self, request, context):  # noqa: N802 (gRPC method name)
        self.calls += 1
        await context.abort(self.status, "no", trailing_metadata=(("error-code", self.error_code),))


@asynccontextmanager
async def refusing(status: grpc.StatusCode, error_code: str) -> AsyncIterator[tuple[Dependency, RefusingHealth]]:
    """A Dependency on a live server that refuses every call so, and the server's servicer."""
    server, refuser = grpc.aio.server(), RefusingHealth(status, error_code)
    health_pb2_grpc.add_HealthServicer_to_server(refuser, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    dep = Dependency(f"refuser{uuid.uuid4().hex[:6]}", f"127.0.0.1:{port}", health_pb2_grpc.HealthStub,
                     caller="test", secret=None)
    try:
        yield dep, refuser
    finally:
        await dep.close()
        await server.stop(0)


@pytest.mark.parametrize(("status", "error_code", "refusal"), [
    (grpc.StatusCode.FAILED_PRECONDITION, "out_of_stock", Rejected),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited", TooMany),  # busy on purpose: come back later
])
async def test_a_live_dependency_refusing_calls_never_opens_its_breaker_nor_is_retried(status, error_code, refusal):
    async with refusing(status, error_code) as (dep, refuser):
        for _ in range(8):
            with pytest.raises(refusal) as refused:
                await dep.call(dep.stub.Check, health_pb2.HealthCheckRequest(), within=5)
            assert refused.value.code == error_code
        assert (dep.breaker.state, dep.breaker.failures, refuser.calls) == ("closed", 0, 8)


async def test_an_exhausted_dependency_that_does_not_say_it_refused_is_retried_and_counted():
    async with refusing(grpc.StatusCode.RESOURCE_EXHAUSTED, "") as (dep, refuser):
        with pytest.raises(Unavailable):
            await dep.call(dep.stub.Check, health_pb2.HealthCheckRequest(), within=0.3)
        assert refuser.calls >= 2 and dep.breaker.failures >= 2


async def test_a_breaker_whose_redis_is_down_lets_calls_through_instead_of_failing_them():
    closed = free_port()  # nothing listens there
    b = Breaker(f"test-{uuid.uuid4().hex[:8]}", caller="test", counts=lambda e: isinstance(e, Transient),
                redis_url=f"redis://127.0.0.1:{closed}/0")
    assert await ran_through(b)
    await fail(b, Transient())  # the failure is the caller's own error, not Redis's
