"""The sagas this process runs, and the lease that keeps any other orchestrator from running them too.
A saga whose owner stopped renewing its lease (it crashed, or was killed) is claimed and resumed here."""

import asyncio
import logging

from opentelemetry.instrumentation.utils import suppress_instrumentation

from sagashop.kit import logs
from sagashop.saga import LeaseLost, Saga, SagaRecord, SagaRunner, SagaStore, Stopped

log = logging.getLogger(__name__)


class Moves:
    """Events set at a saga's next move here (SagaRunner's on_move), for the calls waiting on it."""

    def __init__(self) -> None:
        self.changed: dict[str, asyncio.Event] = {}  # saga id -> set at its next move

    def moved(self, saga_id: str) -> None:
        if (event := self.changed.pop(saga_id, None)) is not None:
            event.set()

    def watch(self, saga_id: str) -> asyncio.Event:
        """An event set at the saga's next move. Take it *before* reading the saga's state, so a move between
        the read and the wait is not missed."""
        return self.changed.setdefault(saga_id, asyncio.Event())

    def unwatch(self, saga_id: str) -> None:
        """Drops the event of a saga that has stopped moving (it would never be set)."""
        self.changed.pop(saga_id, None)


class SagaRuns:
    def __init__(self, store: SagaStore, runner: SagaRunner, *sagas: Saga) -> None:
        self.store, self.runner = store, runner
        self.sagas = {saga.name: saga for saga in sagas}
        self.tasks: dict[str, asyncio.Task[Stopped | None]] = {}

    def start(self, saga_id: str, new: SagaRecord | None = None) -> None:
        """Runs the saga here (unless it already runs here): `new`, just created with its first step's start
        (SagaStore.create(record, first=saga.first)), or else as its log says."""
        if saga_id not in self.tasks:
            task = asyncio.create_task(self._run(saga_id, new), name=f"saga-{saga_id}")
            self.tasks[saga_id] = task
            task.add_done_callback(lambda _: self.tasks.pop(saga_id, None))

    async def settled(self, saga_id: str, seconds: float) -> Stopped | None:
        """Waits up to `seconds` for the run of the saga here, if any, to stop: how it stopped, or None (not
        running here, or still running, or it stopped on an error)."""
        if (task := self.tasks.get(saga_id)) is None:
            return None
        done, _ = await asyncio.wait({task}, timeout=seconds)
        return task.result() if done else None

    async def _run(self, saga_id: str, new: SagaRecord | None) -> Stopped | None:
        try:
            if (record := new or await self.store.get(saga_id)) is not None:
                logs.order_id.set(record.correlation_id)  # in this task's own context, for each line it logs
                return await self.runner.run(self.sagas[record.name], record, created=new is not None)
        except LeaseLost:
            log.warning("saga %s: another orchestrator took it over; stopping here", saga_id)
        except Exception:  # the lease lapses and the saga is claimed again, by us or another orchestrator
            log.exception("saga %s stopped; it resumes once its lease runs out", saga_id)
        return None

    async def keep_leases(self) -> None:
        """Renews the leases of the sagas running here and claims expired ones, every third of a lease."""
        while True:
            try:
                with suppress_instrumentation():  # housekeeping every few seconds: not worth a trace each
                    await self.store.renew(list(self.tasks))
                    claimed = await self.store.claim()
                for saga_id in claimed:
                    log.info("resuming saga %s", saga_id)
                    self.start(saga_id)
            except Exception:  # a database hiccup: try again at the next tick
                log.exception("lease upkeep failed")
            await asyncio.sleep(self.store.lease / 3)

    async def stop(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.store.release()
