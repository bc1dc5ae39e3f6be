"""The saga engine with fake steps and a real saga log, on SQLite and on PostgreSQL."""

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from sagashop.kit.db import PORTABLE_ONLY, database
from sagashop.kit.errors import Rejected, Unavailable
from sagashop.kit.settings import Settings
from sagashop.saga import (
    COMPENSATED,
    SUCCEEDED,
    Crowded,
    LeaseLost,
    Outcome,
    Run,
    Saga,
    SagaRecord,
    SagaRunner,
    SagaStore,
    Step,
    Together,
    new_record,
)
from sagashop.saga.tables import sagas


@dataclass(frozen=True)
class Order:
    id: str


@pytest.fixture(params=["sqlite", "postgres", "postgres-portable"])
async def store(request: pytest.FixtureRequest, tmp_path: Path):
    """The store as it runs on SQLite (portable statements) and on PostgreSQL (its PostgreSQL-only statements), and
    on PostgreSQL with the portable statements."""
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path / "data")
    else:
        settings = Settings(database_url=request.getfixturevalue("postgres_database"))
    db = await database(settings, "orchestrator")
    db.engine.update_execution_options(**{PORTABLE_ONLY: request.param == "postgres-portable"})
    yield SagaStore(db, owner="me", lease=10)
    await db.dispose()


def recorder(log: list[str]):
    def record(name: str, result: object = None, fail: Exception | None = None):
        async def step(run: Run[Order]) -> object:
            log.append(f"{name}({run.reason})" if run.reason else name)
            if fail:
                raise fail
            return result
        return step
    return record


def shop(record, *, charge_fails: Exception | None = None) -> Saga:
    return Saga("t",
                Step("reserve", record("reserve"), undo=record("release")),
                Step("charge", record("charge", 100, charge_fails), undo=record("refund")),
                Step("ship", record("ship")),
                on_rejected=Step("reject", record("reject")), input_type=Order)


async def start(store: SagaStore, saga: Saga, saga_id: str = "s1"):
    record, _ = await store.create(new_record(saga.name, saga_id, saga_id, None, "f", saga.encode(Order(saga_id))),
                                   first=saga.first)
    return record


async def test_a_saga_without_failures_runs_every_step_once_in_order(store):
    log: list[str] = []
    saga = shop(recorder(log))
    assert (await SagaRunner(store).run(saga, await start(store, saga))).state == SUCCEEDED
    assert log == ["reserve", "charge", "ship"]
    assert [(s.name, s.action, s.status) for s in await store.steps("s1")] == [
        ("reserve", "execute", "SUCCEEDED"), ("charge", "execute", "SUCCEEDED"), ("ship", "execute", "SUCCEEDED")]


async def test_a_refusal_undoes_every_started_step_in_reverse_and_rejects_with_its_code(store):
    log: list[str] = []
    saga = shop(recorder(log), charge_fails=Rejected(code="payment_declined"))
    assert (await SagaRunner(store).run(saga, await start(store, saga))).state == COMPENSATED
    assert log == ["reserve", "charge", "refund(payment_declined)", "release(payment_declined)",
                   "reject(payment_declined)"]
    assert (await store.get("s1")).failure_reason == "payment_declined"


async def test_an_unavailable_service_fails_the_step_with_its_reason(store):
    log: list[str] = []
    saga = shop(recorder(log), charge_fails=Unavailable(code="payment_unavailable"))
    await SagaRunner(store).run(saga, await start(store, saga))
    charge = next(s for s in await store.steps("s1") if s.name == "charge")
    assert (charge.status, charge.error.split(":")[0]) == ("FAILED", "payment_unavailable")


async def test_a_resumed_saga_skips_finished_steps_and_repeats_the_one_in_doubt(store):
    log: list[str] = []
    saga = shop(recorder(log))
    record = await start(store, saga)
    await store.advance("s1", started=[("reserve", "execute")])
    await store.advance("s1", finished=[Outcome("reserve", "execute", "SUCCEEDED", 1, "x")],
                        started=[("charge", "execute")])  # the orchestrator died during this call

    assert (await SagaRunner(store).run(saga, record)).state == SUCCEEDED
    assert log == ["charge", "ship"]


async def test_a_failing_undo_is_retried_until_it_succeeds(store):
    log: list[str] = []
    record = recorder(log)
    failures = [Unavailable(code="inventory_unavailable")] * 2

    async def flaky_release(run: Run[Order]) -> None:
        log.append("release")
        if failures:
            raise failures.pop()

    saga = Saga("t", Step("reserve", record("reserve"), undo=flaky_release),
                Step("charge", record("charge", fail=Rejected(code="payment_declined")), undo=record("refund")),
                on_rejected=Step("reject", record("reject")), input_type=Order)
    assert (await SagaRunner(store).run(saga, await start(store, saga))).state == COMPENSATED
    assert log.count("release") == 3
    release = next(s for s in await store.steps("s1") if s.action == "compensate" and s.name == "reserve")
    assert (release.status, release.attempts) == ("SUCCEEDED", 3)


async def test_one_business_key_holds_one_saga(store):
    first, created = await store.create(new_record("t", "a", "a", "user:key", "f1", {"id": "a"}),
                                        first=[("reserve", "execute")])
    again, created_again = await store.create(new_record("t", "b", "b", "user:key", "f2", {"id": "b"}),
                                              first=[("reserve", "execute")])
    assert (created, created_again, again.id, again.fingerprint) == (True, False, "a", "f1")


async def test_a_saga_created_with_its_first_step_has_it_in_doubt_at_once_and_runs_it_without_rewriting_it(store):
    log: list[str] = []
    saga = shop(recorder(log))
    record, created = await store.create(new_record(saga.name, "s1", "s1", "user:k", "f", saga.encode(Order("s1"))),
                                         first=saga.first)
    # as if the orchestrator died right after: the log shows the first step's outcome unknown, to be run again
    assert created and [(s.name, s.action, s.status) for s in await store.steps("s1")] == [
        ("reserve", "execute", "RUNNING")]
    again, created_again = await store.create(new_record(saga.name, "s2", "s2", "user:k", "f", {"id": "s2"}),
                                              first=saga.first)
    assert (created_again, again.id, await store.steps("s2")) == (False, "s1", [])

    writes: list[dict[str, object]] = []
    advance = store.advance

    async def counted(saga_id: str, **move: object) -> None:
        writes.append(move)
        await advance(saga_id, **move)

    store.advance = counted  # type: ignore[method-assign]
    assert (await SagaRunner(store).run(saga, record, created=True)).state == SUCCEEDED
    assert log == ["reserve", "charge", "ship"]
    assert [w["started"] for w in writes] == [(("charge", "execute"),), (("ship", "execute"),), ()]
    assert [(s.name, s.action, s.status, s.attempts) for s in await store.steps("s1")] == [
        ("reserve", "execute", "SUCCEEDED", 1), ("charge", "execute", "SUCCEEDED", 1),
        ("ship", "execute", "SUCCEEDED", 1)]


async def test_concurrent_moves_of_many_sagas_each_hold_their_own_fence_and_go_in_few_writes(store):
    saga = shop(recorder([]))
    ids = [f"s{n}" for n in range(12)]
    for saga_id in ids:
        await store.create(new_record(saga.name, saga_id, saga_id, None, "f", {"id": saga_id}), first=saga.first)
    await store.db.autocommit(lambda conn: conn.execute(sagas.update().where(sagas.c.id == "s3").values(owner="other")))
    flushes: list[int] = []
    flush = store.moves.flush

    async def counted(moves):
        flushes.append(len(moves))
        return await flush(moves)

    store.moves.flush = counted

    done = Outcome("reserve", "execute", "SUCCEEDED", 1, "inventory@v1", result=None)
    outcomes = await asyncio.gather(*(store.advance(saga_id, finished=[done], started=[("charge", "execute")])
                                      for saga_id in ids), return_exceptions=True)

    assert [saga_id for saga_id, o in zip(ids, outcomes, strict=True) if isinstance(o, LeaseLost)] == ["s3"]
    assert all(o is None for saga_id, o in zip(ids, outcomes, strict=True) if saga_id != "s3")
    for saga_id in ("s0", "s3", "s11"):
        steps = [(s.name, s.status, s.handled_by) for s in await store.steps(saga_id)]
        moved = [("reserve", "SUCCEEDED", "inventory@v1"), ("charge", "RUNNING", "")]
        assert steps == ([("reserve", "RUNNING", "")] if saga_id == "s3" else moved)  # the fenced one: nothing
    assert sum(flushes) == 12 and len(flushes) < 12, flushes  # a group commit


async def test_an_undo_that_keeps_failing_parks_the_saga_and_an_operator_retry_finishes_it(store):
    log: list[str] = []
    record = recorder(log)
    broken = [True]

    async def release(run: Run[Order]) -> None:
        log.append("release")
        if broken[0]:
            raise Unavailable(code="inventory_unavailable")

    saga = Saga("t", Step("reserve", record("reserve"), undo=release),
                Step("charge", record("charge", fail=Rejected(code="payment_declined"))),
                on_rejected=Step("reject", record("reject")), input_type=Order)
    runner = SagaRunner(store, park_after=3)
    assert (await runner.run(saga, await start(store, saga))).state == "NEEDS_ATTENTION"
    assert log.count("release") == 3 and "reject(payment_declined)" not in log
    assert await store.claim() == []  # a parked saga is nobody's to resume

    broken[0] = False
    assert await store.take_over("s1", "COMPENSATING", "payment_declined", action="retry", note="fixed", actor="ops")
    assert (await runner.run(saga, await store.get("s1"))).state == COMPENSATED
    assert log[-2:] == ["release", "reject(payment_declined)"]
    assert [(a.action, a.reason, a.actor) for a in await store.audit("s1")] == [("retry", "fixed", "ops")]


async def test_only_a_parked_saga_can_be_taken_over_by_an_operator(store):
    saga = shop(recorder([]))
    await start(store, saga)
    assert not await store.take_over("s1", "ABORTED", "x", action="abort", note="", actor="ops")
    assert (await store.get("s1")).state == "RUNNING"


async def test_a_saga_without_a_way_back_retries_each_step_until_it_succeeds(store):
    log: list[str] = []
    failures = [Unavailable(code="payment_unavailable")]

    async def refund(run: Run[Order]) -> None:
        log.append("refund")
        if failures:
            raise failures.pop()

    saga = Saga("cancel", Step("refund", refund), Step("cancel", recorder(log)("cancel")),
                on_rejected=None, input_type=Order)
    assert (await SagaRunner(store).run(saga, await start(store, saga))).state == SUCCEEDED
    assert log == ["refund", "refund", "cancel"]


async def test_an_orchestrator_that_lost_its_lease_cannot_write_the_sagas_log(store):
    saga = shop(recorder([]))
    record = await start(store, saga)
    other = SagaStore(store.db, owner="other", lease=10)
    await store.release()  # our lease lapses ...
    assert await other.claim() == ["s1"]  # ... and another orchestrator takes the saga over
    created = await store.steps("s1")  # the first step's start, written with the saga

    with pytest.raises(LeaseLost):
        await SagaRunner(store).run(saga, record)
    assert await store.steps("s1") == created == [created[0]] and created[0].status == "RUNNING"


async def test_a_step_past_the_point_of_no_return_is_retried_and_never_compensated(store):
    log: list[str] = []
    failures = [Unavailable(code="order_unavailable")] * 2

    async def approve(run: Run[Order]) -> None:
        log.append("approve")
        if failures:
            raise failures.pop()

    record = recorder(log)
    saga = Saga("t", Step("reserve", record("reserve"), undo=record("release")),
                Step("approve", approve, until_done=True),
                on_rejected=Step("reject", record("reject")), input_type=Order)
    assert (await SagaRunner(store).run(saga, await start(store, saga))).state == SUCCEEDED
    assert log == ["reserve", "approve", "approve", "approve"]


def together(log: list[str], *, charge_fails: Exception | None = None) -> tuple[Saga, asyncio.Event]:
    """Reserve and charge run together (charge waits until reserve has begun: they must overlap), then ship."""
    record, reserving = recorder(log), asyncio.Event()

    async def reserve(run: Run[Order]) -> str:
        reserving.set()
        await asyncio.sleep(0.05)  # still under way when charge ends
        log.append("reserve")
        return "held"

    async def charge(run: Run[Order]) -> int:
        await asyncio.wait_for(reserving.wait(), 5)
        return await record("charge", 100, charge_fails)(run)  # type: ignore[no-any-return]

    saga = Saga("t", Together(Step("reserve", reserve, undo=record("release")), Step("charge", charge,
                                                                                  undo=record("refund"))),
                Step("ship", record("ship")), on_rejected=Step("reject", record("reject")), input_type=Order)
    return saga, reserving


async def test_steps_run_together_overlap_and_each_ends_in_the_log_before_the_next_stage(store):
    log: list[str] = []
    saga, _ = together(log)
    record = await start(store, saga)
    assert [(s.name, s.status) for s in await store.steps("s1")] == [("reserve", "RUNNING"), ("charge", "RUNNING")]

    runner = SagaRunner(store)
    assert (await runner.run(saga, record, created=True)).state == SUCCEEDED
    assert log == ["charge", "reserve", "ship"]  # charge ended while reserve was under way
    assert [(s.name, s.status, s.result) for s in await store.steps("s1")] == [
        ("reserve", "SUCCEEDED", "held"), ("charge", "SUCCEEDED", 100), ("ship", "SUCCEEDED", None)]


async def test_a_refusal_among_steps_run_together_waits_for_the_others_then_undoes_every_started_one(store):
    log: list[str] = []
    saga, _ = together(log, charge_fails=Rejected(code="payment_declined"))
    assert (await SagaRunner(store).run(saga, await start(store, saga), created=True)).state == COMPENSATED
    assert log == ["charge", "reserve", "refund(payment_declined)", "release(payment_declined)",
                   "reject(payment_declined)"]
    assert [(s.name, s.action, s.status) for s in await store.steps("s1")] == [
        ("reserve", "execute", "SUCCEEDED"), ("charge", "execute", "FAILED"), ("charge", "compensate", "SUCCEEDED"),
        ("reserve", "compensate", "SUCCEEDED"), ("reject", "execute", "SUCCEEDED")]
    assert (await store.get("s1")).failure_reason == "payment_declined"


async def test_a_resumed_stage_runs_again_only_its_steps_in_doubt(store):
    log: list[str] = []
    saga, reserving = together(log)
    record = await start(store, saga)
    await store.advance("s1", finished=[Outcome("reserve", "execute", "SUCCEEDED", 1, "x", result="held")])
    reserving.set()  # reserve is not run again, so charge must not wait for it

    assert (await SagaRunner(store).run(saga, record)).state == SUCCEEDED
    assert log == ["charge", "ship"]


def test_steps_run_together_are_two_or_more():
    with pytest.raises(ValueError, match="two or more"):
        Together(Step("reserve", recorder([])("reserve")))


async def test_the_way_out_runs_in_order_skips_what_succeeded_and_its_results_come_back_with_the_stop(store):
    log: list[str] = []
    record = recorder(log)
    saga = Saga("t", Together(Step("create", record("create", fail=Unavailable(code="order_unavailable"))),
                              Step("reserve", record("reserve"), undo=record("release"))),
                on_rejected=(Step("create", record("create")), Step("reject", record("reject", "rejected"))),
                input_type=Order)

    stopped = await SagaRunner(store).run(saga, await start(store, saga), created=True)

    assert (stopped.state, stopped.results["reject"]) == (COMPENSATED, "rejected")
    assert log == ["create", "reserve", "release(order_unavailable)", "create(order_unavailable)",
                   "reject(order_unavailable)"]
    assert [(s.name, s.action, s.status, s.attempts) for s in await store.steps("s1")] == [
        ("create", "execute", "SUCCEEDED", 2), ("reserve", "execute", "SUCCEEDED", 1),
        ("reserve", "compensate", "SUCCEEDED", 1), ("reject", "execute", "SUCCEEDED", 1)]


async def test_a_step_already_done_is_not_run_again_on_the_way_out(store):
    log: list[str] = []
    record = recorder(log)
    saga = Saga("t", Step("create", record("create")), Step("charge", record("charge", fail=Rejected(code="no"))),
                on_rejected=(Step("create", record("create")), Step("reject", record("reject"))), input_type=Order)
    assert (await SagaRunner(store).run(saga, await start(store, saga))).state == COMPENSATED
    assert log == ["create", "charge", "reject(no)"]


async def test_steps_see_the_context_stored_with_the_saga(store):
    seen: list[dict[str, str]] = []

    async def look(run: Run[Order]) -> None:
        seen.append(dict(run.context))

    saga = Saga("t", Step("look", look), on_rejected=None, input_type=Order)
    record, _ = await store.create(new_record("t", "s1", "s1", None, "f", {"id": "s1"}, {"route": "v2"}),
                                   first=saga.first)
    assert (await store.get("s1")).context == {"route": "v2"}
    await SagaRunner(store).run(saga, record)
    assert seen == [{"route": "v2"}]


async def test_the_calls_hook_fills_the_step_log_and_each_move_is_told(store):
    @dataclass
    class Calls:
        retries: int = 0
        handled_by: str = ""

        def __enter__(self) -> "Calls":
            self.retries, self.handled_by = 2, "inventory@v2"
            return self

        def __exit__(self, *_: object) -> None:
            return None

    moves: list[str] = []
    saga = shop(recorder([]))
    runner = SagaRunner(store, calls=Calls, on_move=moves.append)
    assert (await runner.run(saga, await start(store, saga), created=True)).state == SUCCEEDED
    assert {(s.attempts, s.handled_by) for s in await store.steps("s1")} == {(3, "inventory@v2")}
    assert set(moves) == {"s1"} and len(moves) >= 4  # each step's success, and each write


async def test_a_subject_gets_no_more_active_sagas_than_allowed_and_one_again_once_one_ended(store):
    def record(saga_id: str, subject: str = "ada") -> SagaRecord:
        return new_record("t", saga_id, saga_id, None, "f", {"id": saga_id}, subject=subject)

    for saga_id in ("a1", "a2"):
        assert (await store.create(record(saga_id), first=[("reserve", "execute")], at_most=2))[1]
    with pytest.raises(Crowded):
        await store.create(record("a3"), first=[("reserve", "execute")], at_most=2)
    assert await store.get("a3") is None and await store.steps("a3") == []  # nothing written
    assert (await store.create(record("b1", subject="bob"), first=[("reserve", "execute")], at_most=2))[1]
    assert (await store.create(record("a4"), first=[("reserve", "execute")]))[1]  # no limit asked for

    await store.advance("a1", state=SUCCEEDED)
    with pytest.raises(Crowded):  # a1 ended, but a2 and a4 are active
        await store.create(record("a5"), first=[("reserve", "execute")], at_most=2)
    assert (await store.create(record("a6"), first=[("reserve", "execute")], at_most=3))[1]
