"""Runs a saga from its log: forward stage by stage (a step, or steps run together), then (after a failure) every
started step's undo in reverse. Every transition is written before the next move, so a run can stop anywhere and
resume from the log."""

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from sagashop.kit.errors import DomainError
from sagashop.kit.grpcclient import CallRecord, current_record

from . import observe
from .definition import (
    COMPENSATE,
    COMPENSATED,
    COMPENSATING,
    EXECUTE,
    NEEDS_ATTENTION,
    RUNNING,
    SUCCEEDED,
    Action,
    Run,
    Saga,
)
from .store import STEP_FAILED, STEP_SUCCEEDED, Outcome, SagaRecord, SagaStore, StepRecord

logger = logging.getLogger(__name__)
RETRY_BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between attempts of an undo; the last repeats
CrashPoint = Callable[[str, str], None]  # (step name, "before" | "after"): a test hook that may end the process


class StepFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Parked(Exception):
    """An action that must succeed kept failing: the saga waits for an operator."""


class Log:
    """The saga log as one run writes it. How a step ended is written with the run's next move (the next stage's
    starts, or the saga's new state), in one transaction: were the orchestrator to die in between, the step would
    be in doubt and run again on resume with the same idempotency key, as after a crash during its call."""

    def __init__(self, store: SagaStore, saga_id: str, moved: Callable[[], None],
                 written: tuple[tuple[str, str], ...] = ()) -> None:
        self.store, self.saga_id, self.moved = store, saga_id, moved
        self.ended: list[Outcome] = []  # not written yet
        self.succeeded: set[str] = set()  # the forward steps this run saw succeed, written or not
        self.written = written  # the starts the saga's creation wrote with it: the run's first move, done

    async def write(self, *, started: tuple[tuple[str, str], ...] = (), state: str | None = None,
                    failure_reason: str = "") -> None:
        written, self.written = self.written, ()
        ended, self.ended = self.ended, []
        if ended or state is not None or started != written:
            await self.store.advance(self.saga_id, finished=ended, started=started, state=state,
                                     failure_reason=failure_reason)
        self.moved()


class SagaRunner:
    def __init__(self, store: SagaStore, *, park_after: int = 20, crash_point: CrashPoint | None = None) -> None:
        self.store, self.park_after = store, park_after
        self.crash_point = crash_point or (lambda step, when: None)
        self.changed: dict[str, asyncio.Event] = {}  # saga id -> set at its next transition
        self.logs: dict[str, Log] = {}  # saga id -> the log of its run here

    async def run(self, saga: Saga, record: SagaRecord, history: list[StepRecord] | None = None, *,
                  created: bool = False) -> str:
        """Drives the saga until it ends (SUCCEEDED, COMPENSATED) or is parked (NEEDS_ATTENTION). `history` is
        its steps so far (read from the log if not given; none for a saga just created). `created`: the saga was
        just created with its first step's start (SagaStore.create(first=saga.first)), so the run need not
        write that start again."""
        if created:
            history = []
        elif history is None:
            history = await self.store.steps(record.id)
        done = {(s.name, s.action): s for s in history}
        log = self.logs[record.id] = Log(self.store, record.id, lambda: self._notify(record.id),
                                         saga.first if created else ())
        try:
            with observe.running(record, first=not done):
                return await self._drive(saga, record, done, log)
        finally:
            self.logs.pop(record.id, None)

    def succeeded_here(self, saga_id: str, step: str) -> bool:
        """Whether the saga's run here saw the forward `step` succeed, though its success may not be written yet
        (it goes with the run's next move: after steps run together, once each of them has ended)."""
        return (log := self.logs.get(saga_id)) is not None and step in log.succeeded

    async def _drive(self, saga: Saga, record: SagaRecord, done: dict[tuple[str, str], StepRecord], log: Log) -> str:
        input_ = saga.decode(record.input)
        results = {name: s.result for (name, action), s in done.items() if action == EXECUTE}
        reason = record.failure_reason
        try:
            if record.state == RUNNING:
                try:
                    await self._forward(saga, record, input_, done, results, log)
                    return await self._transition(log, SUCCEEDED)
                except StepFailed as failure:
                    reason = failure.reason
                    await self._transition(log, COMPENSATING, reason)
            await self._compensate(saga, Run(record.id, input_, "", results, reason, record.route), done, log)
            return await self._transition(log, COMPENSATED, reason)
        except Parked:
            return await self._transition(log, NEEDS_ATTENTION)

    async def _forward(self, saga: Saga, record: SagaRecord, input_: Any, done: dict[tuple[str, str], StepRecord],
                       results: dict[str, Any], log: Log) -> None:
        for stage in saga.stages:
            todo = [step for step in stage if not _succeeded(done.get((step.name, EXECUTE)))]
            if not todo:
                continue
            await log.write(started=tuple((step.name, EXECUTE) for step in todo))
            runs = [self._attempts(Run(record.id, input_, step.name, results, route=record.route), EXECUTE,
                                   step.action, log, until_done=saga.on_rejected is None or step.until_done)
                    for step in todo]
            if len(runs) == 1:
                results[todo[0].name] = await runs[0]
                continue
            # each step of the stage ends, whatever the others do, before the run goes on or compensates
            ended = await asyncio.gather(*runs, return_exceptions=True)
            if errors := [e for e in ended if isinstance(e, BaseException)]:  # anything else before a refusal
                raise min(errors, key=lambda e: isinstance(e, StepFailed))
            results.update((step.name, result) for step, result in zip(todo, ended, strict=True))

    async def _compensate(self, saga: Saga, run: Run[Any], done: dict[tuple[str, str], StepRecord], log: Log) -> None:
        started = {s.name for s in await self.store.steps(run.saga_id) if s.action == EXECUTE}
        for step in reversed(saga.steps):
            if step.undo and step.name in started and not _succeeded(done.get((step.name, COMPENSATE))):
                await log.write(started=((step.name, COMPENSATE),))
                await self._attempts(_at(run, step.name), COMPENSATE, step.undo, log, until_done=True)
        last = saga.on_rejected
        if last is not None and not _succeeded(done.get((last.name, EXECUTE))):
            await log.write(started=((last.name, EXECUTE),))
            await self._attempts(_at(run, last.name), EXECUTE, last.action, log, until_done=True)

    async def _attempts(self, run: Run[Any], action_name: str, action: Action, log: Log, *,
                        until_done: bool) -> Any:
        """One step or undo, its start written. A DomainError ends a forward step (its code is the saga's failure
        reason); an action that must succeed is retried with capped backoff instead, and parks the saga after
        `park_after` failures. Anything else (a bug, a lost database) propagates: the saga is resumed later."""
        saga_id, name = run.saga_id, run.step
        for attempt in itertools.count(1):
            calls = CallRecord()
            token = current_record.set(calls)
            try:
                with observe.attempt(name, action_name, attempt, calls):
                    self.crash_point(name, "before")
                    result = await action(run)
                    self.crash_point(name, "after")
            except DomainError as e:
                failed = Outcome(name, action_name, STEP_FAILED, 1 + calls.retries, calls.handled_by,
                                 error=f"{e.code}: {e.detail}")
                log.ended.append(failed)
                if not until_done:
                    raise StepFailed(e.code) from e
                await log.write()
                if attempt >= self.park_after:
                    logger.error("saga %s: %s %s failed %d times; parked", saga_id, action_name, name, attempt)
                    raise Parked(name) from e
                logger.warning("saga %s: %s %s failed (%s), retrying", saga_id, action_name, name, e.code)
                await asyncio.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF)) - 1])
                continue
            finally:
                current_record.reset(token)
            log.ended.append(Outcome(name, action_name, STEP_SUCCEEDED, 1 + calls.retries, calls.handled_by,
                                     result=result))
            if action_name == EXECUTE:
                log.succeeded.add(name)
                log.moved()
            return result

    async def _transition(self, log: Log, state: str, reason: str = "") -> str:
        await log.write(state=state, failure_reason=reason)
        logger.info("saga %s is %s%s", log.saga_id, state, f" ({reason})" if reason else "")
        observe.transitioned(state, reason)
        return state

    def _notify(self, saga_id: str) -> None:
        if (event := self.changed.pop(saga_id, None)) is not None:
            event.set()

    def watch(self, saga_id: str) -> asyncio.Event:
        """An event set at the saga's next transition. Take it *before* reading the saga's state, so a
        transition between the read and the wait is not missed."""
        return self.changed.setdefault(saga_id, asyncio.Event())

    def unwatch(self, saga_id: str) -> None:
        """Drops the event of a saga that has stopped moving (it would never be set)."""
        self.changed.pop(saga_id, None)


def _at(run: Run[Any], step: str) -> Run[Any]:
    return Run(run.saga_id, run.input, step, run.results, run.reason, run.route)


def _succeeded(step: StepRecord | None) -> bool:
    return step is not None and step.status == STEP_SUCCEEDED
