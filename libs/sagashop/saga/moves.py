"""The saga log as one run writes it: a step's end goes with the run's next move."""

from collections.abc import Callable

from .records import Outcome
from .store import SagaStore


class Log:
    """The saga log as one run writes it. How a step ended is written with the run's next move (the next stage's
    starts, or the saga's new state), in one transaction: were the orchestrator to die in between, the step would
    be in doubt and run again on resume with the same idempotency key, as after a crash during its call."""

    def __init__(self, store: SagaStore, saga_id: str, on_move: Callable[[str], None],
                 written: tuple[tuple[str, str], ...] = ()) -> None:
        self.store, self.saga_id, self.on_move = store, saga_id, on_move
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
        self.on_move(self.saga_id)
