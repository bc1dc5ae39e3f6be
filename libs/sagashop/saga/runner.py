"""Runs a saga from its log: forward in order, then (after a failure) every started step's undo in reverse.
Every transition is written before the next move, so a run can stop anywhere and resume from the log."""

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
from .store import STEP_FAILED, STEP_SUCCEEDED, SagaRecord, SagaStore, StepRecord

log = logging.getLogger(__name__)
RETRY_BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between attempts of an undo; the last repeats
CrashPoint = Callable[[str, str], None]  # (step name, "before" | "after"): a test hook that may end the process


class StepFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Parked(Exception):
    """An action that must succeed kept failing: the saga waits for an operator."""


class SagaRunner:
    def __init__(self, store: SagaStore, *, park_after: int = 20, crash_point: CrashPoint | None = None) -> None:
        self.store, self.park_after = store, park_after
        self.crash_point = crash_point or (lambda step, when: None)
        self.changed: dict[str, asyncio.Event] = {}  # saga id -> set at its next transition

    async def run(self, saga: Saga, record: SagaRecord) -> str:
        """Drives the saga until it ends (SUCCEEDED, COMPENSATED) or is parked (NEEDS_ATTENTION)."""
        done = {(s.name, s.action): s for s in await self.store.steps(record.id)}
        with observe.running(record, first=not done):
            return await self._drive(saga, record, done)

    async def _drive(self, saga: Saga, record: SagaRecord, done: dict[tuple[str, str], StepRecord]) -> str:
        input_ = saga.decode(record.input)
        results = {name: s.result for (name, action), s in done.items() if action == EXECUTE}
        reason = record.failure_reason
        try:
            if record.state == RUNNING:
                try:
                    await self._forward(saga, record, input_, done, results)
                    return await self._transition(record.id, SUCCEEDED)
                except StepFailed as failure:
                    reason = failure.reason
                    await self._transition(record.id, COMPENSATING, reason)
            await self._compensate(saga, record.id, Run(record.id, input_, "", results, reason, record.route), done)
            return await self._transition(record.id, COMPENSATED, reason)
        except Parked:
            return await self._transition(record.id, NEEDS_ATTENTION)

    async def _forward(self, saga: Saga, record: SagaRecord, input_: Any, done: dict[tuple[str, str], StepRecord],
                       results: dict[str, Any]) -> None:
        for step in saga.steps:
            if not _succeeded(done.get((step.name, EXECUTE))):
                run = Run(record.id, input_, step.name, results, route=record.route)
                must_succeed = saga.on_rejected is None or step.until_done
                results[step.name] = await self._step(run, EXECUTE, step.action, until_done=must_succeed)

    async def _compensate(self, saga: Saga, saga_id: str, run: Run[Any],
                          done: dict[tuple[str, str], StepRecord]) -> None:
        started = {s.name for s in await self.store.steps(saga_id) if s.action == EXECUTE}
        for step in reversed(saga.steps):
            if step.undo and step.name in started and not _succeeded(done.get((step.name, COMPENSATE))):
                await self._step(_at(run, step.name), COMPENSATE, step.undo, until_done=True)
        last = saga.on_rejected
        if last is not None and not _succeeded(done.get((last.name, EXECUTE))):
            await self._step(_at(run, last.name), EXECUTE, last.action, until_done=True)

    async def _step(self, run: Run[Any], action_name: str, action: Action, *, until_done: bool) -> Any:
        """One step or undo. A DomainError ends a forward step (its code is the saga's failure reason); an
        action that must succeed is retried with capped backoff instead, and parks the saga after
        `park_after` failures. Anything else (a bug, a lost database) propagates: the saga is resumed later."""
        saga_id, name = run.saga_id, run.step
        await self.store.start_step(saga_id, name, action_name)
        self._notify(saga_id)
        for attempt in itertools.count(1):
            calls = CallRecord()
            token = current_record.set(calls)
            try:
                with observe.attempt(name, action_name, attempt, calls):
                    self.crash_point(name, "before")
                    result = await action(run)
                    self.crash_point(name, "after")
            except DomainError as e:
                await self.store.finish_step(saga_id, name, action_name, status=STEP_FAILED,
                                             attempts=max(calls.attempts, 1), handled_by=calls.handled_by,
                                             error=f"{e.code}: {e.detail}")
                if not until_done:
                    raise StepFailed(e.code) from e
                if attempt >= self.park_after:
                    log.error("saga %s: %s %s failed %d times; parked", saga_id, action_name, name, attempt)
                    raise Parked(name) from e
                log.warning("saga %s: %s %s failed (%s), retrying", saga_id, action_name, name, e.code)
                await asyncio.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF)) - 1])
                continue
            finally:
                current_record.reset(token)
            await self.store.finish_step(saga_id, name, action_name, status=STEP_SUCCEEDED,
                                         attempts=max(calls.attempts, 1), handled_by=calls.handled_by, result=result)
            self._notify(saga_id)
            return result

    async def _transition(self, saga_id: str, state: str, reason: str = "") -> str:
        await self.store.set_state(saga_id, state, reason)
        log.info("saga %s is %s%s", saga_id, state, f" ({reason})" if reason else "")
        observe.transitioned(state, reason)
        self._notify(saga_id)
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
