"""Runs a saga from its log: forward in order, then (after a failure) every started step's undo in reverse.
Every transition is written before the next move, so a run can stop anywhere and resume from the log."""

import asyncio
import itertools
import logging
from typing import Any

from sagashop.kit.errors import DomainError
from sagashop.kit.grpcclient import CallRecord, current_record

from .definition import COMPENSATE, COMPENSATED, COMPENSATING, EXECUTE, RUNNING, SUCCEEDED, Action, Run, Saga
from .store import STEP_FAILED, STEP_SUCCEEDED, SagaRecord, SagaStore, StepRecord

log = logging.getLogger(__name__)
UNDO_BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between attempts of an undo; the last repeats


class StepFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SagaRunner:
    def __init__(self, store: SagaStore) -> None:
        self.store = store
        self.changed: dict[str, asyncio.Event] = {}  # saga id -> set at its next transition

    async def run(self, saga: Saga, record: SagaRecord) -> str:
        """Drives the saga to SUCCEEDED or COMPENSATED; returns that state."""
        input_ = saga.decode(record.input)
        done = {(s.name, s.action): s for s in await self.store.steps(record.id)}
        results = {name: s.result for (name, action), s in done.items() if action == EXECUTE}
        state, reason = record.state, record.failure_reason
        if state == RUNNING:
            try:
                for step in saga.steps:
                    if _succeeded(done.get((step.name, EXECUTE))):
                        continue
                    results[step.name] = await self._execute(record.id, step.name, step.action,
                                                             Run(record.id, input_, step.name, results))
            except StepFailed as failure:
                state, reason = COMPENSATING, failure.reason
                await self._transition(record.id, state, reason)
            else:
                await self._transition(record.id, SUCCEEDED)
                return SUCCEEDED
        started = {s.name for s in await self.store.steps(record.id) if s.action == EXECUTE}
        for step in reversed(saga.steps):
            if step.undo and step.name in started and not _succeeded(done.get((step.name, COMPENSATE))):
                await self._until_done(record.id, step.name, COMPENSATE, step.undo,
                                       Run(record.id, input_, step.name, results, reason))
        last = saga.on_rejected
        if not _succeeded(done.get((last.name, EXECUTE))):
            await self._until_done(record.id, last.name, EXECUTE, last.action,
                                   Run(record.id, input_, last.name, results, reason))
        await self._transition(record.id, COMPENSATED, reason)
        return COMPENSATED

    async def _execute(self, saga_id: str, name: str, action: Action, run: Run[Any]) -> Any:
        """One forward step. A domain error ends the forward path (its code is the saga's failure reason);
        anything else (a bug, a lost database) propagates and leaves the saga to be resumed."""
        await self.store.start_step(saga_id, name, EXECUTE)
        self._notify(saga_id)
        calls = CallRecord()
        token = current_record.set(calls)
        try:
            result = await action(run)
        except DomainError as e:
            await self.store.finish_step(saga_id, name, EXECUTE, status=STEP_FAILED, attempts=calls.attempts,
                                         handled_by=calls.handled_by, error=f"{e.code}: {e.detail}")
            raise StepFailed(e.code) from e
        finally:
            current_record.reset(token)
        await self.store.finish_step(saga_id, name, EXECUTE, status=STEP_SUCCEEDED, attempts=calls.attempts,
                                     handled_by=calls.handled_by, result=result)
        self._notify(saga_id)
        return result

    async def _until_done(self, saga_id: str, name: str, action_name: str, action: Action, run: Run[Any]) -> None:
        """A compensation never gives up: it is retried with capped backoff until it succeeds."""
        await self.store.start_step(saga_id, name, action_name)
        self._notify(saga_id)
        for attempt in itertools.count():
            calls = CallRecord()
            token = current_record.set(calls)
            try:
                await action(run)
            except DomainError as e:
                await self.store.finish_step(saga_id, name, action_name, status=STEP_FAILED,
                                             attempts=max(calls.attempts, 1), handled_by=calls.handled_by,
                                             error=f"{e.code}: {e.detail}")
                log.warning("saga %s: %s %s failed (%s), retrying", saga_id, action_name, name, e.code)
                await asyncio.sleep(UNDO_BACKOFF[min(attempt, len(UNDO_BACKOFF) - 1)])
                continue
            finally:
                current_record.reset(token)
            await self.store.finish_step(saga_id, name, action_name, status=STEP_SUCCEEDED,
                                         attempts=max(calls.attempts, 1), handled_by=calls.handled_by)
            self._notify(saga_id)
            return

    async def _transition(self, saga_id: str, state: str, reason: str = "") -> None:
        await self.store.set_state(saga_id, state, reason)
        self._notify(saga_id)

    def _notify(self, saga_id: str) -> None:
        if (event := self.changed.pop(saga_id, None)) is not None:
            event.set()

    def watch(self, saga_id: str) -> asyncio.Event:
        """An event set at the saga's next transition. Take it *before* reading the saga's state, so a
        transition between the read and the wait is not missed."""
        return self.changed.setdefault(saga_id, asyncio.Event())


def _succeeded(step: StepRecord | None) -> bool:
    return step is not None and step.status == STEP_SUCCEEDED
