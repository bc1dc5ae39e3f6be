"""Runs a saga from its log: forward stage by stage (a step, or steps run together), then (after a failure) every
started step's undo in reverse and the steps on the way out. Every transition is written before the next move, so
a run can stop anywhere and resume from the log."""

import asyncio
import itertools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from types import SimpleNamespace
from typing import Any

from sagashop.kit.errors import DomainError

from .definition import (
    COMPENSATE,
    COMPENSATED,
    COMPENSATING,
    EXECUTE,
    NEEDS_ATTENTION,
    RUNNING,
    SUCCEEDED,
    Action,
    Calls,
    Run,
    Saga,
    Stopped,
)
from .moves import Log
from .observe import Telemetry
from .records import STEP_FAILED, STEP_SUCCEEDED, Outcome, SagaRecord, StepRecord
from .store import SagaStore

logger = logging.getLogger(__name__)
RETRY_BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # seconds between attempts of an undo; the last repeats
CrashPoint = Callable[[str, str], None]  # (step name, "before" | "after"): a test hook that may end the process
NO_CALLS = nullcontext(SimpleNamespace(retries=0, handled_by=""))  # the record of calls when none is kept


class StepFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Parked(Exception):
    """An action that must succeed kept failing: the saga waits for an operator."""


class SagaRunner:
    def __init__(self, store: SagaStore, *, park_after: int = 20, crash_point: CrashPoint | None = None,
                 calls: Callable[[], AbstractContextManager[Calls]] = lambda: NO_CALLS,
                 on_move: Callable[[str], None] = lambda saga_id: None, telemetry: Telemetry | None = None) -> None:
        """`calls` opens the record of one attempt's calls (its retries and who answered go in the step's log);
        `on_move` is told a saga's id at each of its transitions here, and when one of its steps succeeds."""
        self.store, self.park_after, self.calls, self.on_move = store, park_after, calls, on_move
        self.crash_point = crash_point or (lambda step, when: None)
        self.telemetry = telemetry or Telemetry()
        self.logs: dict[str, Log] = {}  # saga id -> the log of its run here

    async def run(self, saga: Saga, record: SagaRecord, history: list[StepRecord] | None = None, *,
                  created: bool = False) -> Stopped:
        """Drives the saga until it ends (SUCCEEDED, COMPENSATED) or is parked (NEEDS_ATTENTION). `history` is
        its steps so far (read from the log if not given; none for a saga just created). `created`: the saga was
        just created with its first stage's starts (SagaStore.create(first=saga.first)), not to be written again."""
        if created:
            history = []
        elif history is None:
            history = await self.store.steps(record.id)
        done = {(s.name, s.action): s for s in history}
        log = self.logs[record.id] = Log(self.store, record.id, self.on_move, saga.first if created else ())
        run = Run(record.id, saga.decode(record.input), "", {name: s.result for (name, action), s in done.items()
                                                             if action == EXECUTE}, record.failure_reason,
                  record.context)
        try:
            with self.telemetry.running(record, first=not done):
                return Stopped(await self._drive(saga, record.state, run, done, log), run.results)
        finally:
            self.logs.pop(record.id, None)

    def succeeded_here(self, saga_id: str, step: str) -> bool:
        """Whether the saga's run here saw the forward `step` succeed, though its success may not be written yet
        (it goes with the run's next move: after steps run together, once each of them has ended)."""
        return (log := self.logs.get(saga_id)) is not None and step in log.succeeded

    async def _drive(self, saga: Saga, state: str, run: Run[Any], done: dict[tuple[str, str], StepRecord],
                     log: Log) -> str:
        try:
            if state == RUNNING:
                try:
                    await self._forward(saga, run, done, log)
                    return await self._transition(log, SUCCEEDED)
                except StepFailed as failure:
                    run = Run(run.saga_id, run.input, "", run.results, failure.reason, run.context)
                    await self._transition(log, COMPENSATING, run.reason)
            await self._compensate(saga, run, done, log)
            return await self._transition(log, COMPENSATED, run.reason)
        except Parked:
            return await self._transition(log, NEEDS_ATTENTION)

    async def _forward(self, saga: Saga, run: Run[Any], done: dict[tuple[str, str], StepRecord], log: Log) -> None:
        for stage in saga.stages:
            todo = [step for step in stage if not _succeeded(done.get((step.name, EXECUTE)))]
            if not todo:
                continue
            await log.write(started=tuple((step.name, EXECUTE) for step in todo))
            attempts = [self._attempts(_at(run, step.name), EXECUTE, step.action, log,
                                       until_done=not saga.on_rejected or step.until_done) for step in todo]
            if len(attempts) == 1:
                run.results[todo[0].name] = await attempts[0]
                continue
            # each step of the stage ends, whatever the others do, before the run goes on or compensates
            ended = await asyncio.gather(*attempts, return_exceptions=True)
            if errors := [e for e in ended if isinstance(e, BaseException)]:  # anything else before a refusal
                raise min(errors, key=lambda e: isinstance(e, StepFailed))
            run.results.update((step.name, result) for step, result in zip(todo, ended, strict=True))

    async def _compensate(self, saga: Saga, run: Run[Any], done: dict[tuple[str, str], StepRecord], log: Log) -> None:
        started = {s.name for s in await self.store.steps(run.saga_id) if s.action == EXECUTE}
        for step in reversed(saga.steps):
            if step.undo and step.name in started and not _succeeded(done.get((step.name, COMPENSATE))):
                await log.write(started=((step.name, COMPENSATE),))
                await self._attempts(_at(run, step.name), COMPENSATE, step.undo, log, until_done=True)
        for step in saga.on_rejected:  # the way out, each step once: one that succeeded already is not run again
            if not _succeeded(done.get((step.name, EXECUTE))) and step.name not in log.succeeded:
                await log.write(started=((step.name, EXECUTE),))
                run.results[step.name] = await self._attempts(_at(run, step.name), EXECUTE, step.action, log,
                                                              until_done=True)

    async def _attempts(self, run: Run[Any], action_name: str, action: Action, log: Log, *, until_done: bool) -> Any:
        """One step or undo, its start written. A DomainError ends a forward step (its code is the saga's failure
        reason); an action that must succeed is retried with capped backoff instead, and parks the saga after
        `park_after` failures. Anything else (a bug, a lost database) propagates: the saga is resumed later."""
        for attempt in itertools.count(1):
            try:
                with self.calls() as calls, self.telemetry.attempt(run.step, action_name, attempt, calls):
                    self.crash_point(run.step, "before")
                    result = await action(run)
                    self.crash_point(run.step, "after")
            except DomainError as e:
                log.ended.append(Outcome(run.step, action_name, STEP_FAILED, 1 + calls.retries, calls.handled_by,
                                         error=f"{e.code}: {e.detail}"))
                if not until_done:
                    raise StepFailed(e.code) from e
                await log.write()
                if attempt >= self.park_after:
                    logger.error("saga %s: %s %s failed %d times; parked", run.saga_id, action_name, run.step, attempt)
                    raise Parked(run.step) from e
                logger.warning("saga %s: %s %s failed (%s), retrying", run.saga_id, action_name, run.step, e.code)
                await asyncio.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF)) - 1])
                continue
            log.ended.append(Outcome(run.step, action_name, STEP_SUCCEEDED, 1 + calls.retries, calls.handled_by,
                                     result=result))
            if action_name == EXECUTE:
                log.succeeded.add(run.step)
                self.on_move(run.saga_id)
            return result

    async def _transition(self, log: Log, state: str, reason: str = "") -> str:
        await log.write(state=state, failure_reason=reason)
        logger.info("saga %s is %s%s", log.saga_id, state, f" ({reason})" if reason else "")
        self.telemetry.transitioned(state, reason)
        return state


def _at(run: Run[Any], step: str) -> Run[Any]:
    return Run(run.saga_id, run.input, step, run.results, run.reason, run.context)


def _succeeded(step: StepRecord | None) -> bool:
    return step is not None and step.status == STEP_SUCCEEDED
