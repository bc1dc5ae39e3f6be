"""A saga is steps run forward in order, each with the undo that compensates it; steps that depend on nothing
of each other can run together. No I/O here."""

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, get_args

from pydantic import TypeAdapter

I = TypeVar("I")  # noqa: E741 - the saga's input

# NEEDS_ATTENTION: parked for an operator; ABORTED: ended by one
SagaState = Literal["RUNNING", "COMPENSATING", "NEEDS_ATTENTION", "SUCCEEDED", "COMPENSATED", "ABORTED"]
STATES: tuple[SagaState, ...] = get_args(SagaState)
RUNNING, COMPENSATING, NEEDS_ATTENTION, SUCCEEDED, COMPENSATED, ABORTED = STATES
ACTIVE = (RUNNING, COMPENSATING)  # an orchestrator holds a lease on it and drives it
TERMINAL = frozenset({SUCCEEDED, COMPENSATED, ABORTED})
EXECUTE, COMPENSATE = "execute", "compensate"


@dataclass(frozen=True)
class Run(Generic[I]):
    """What a step sees: the saga's input, its own idempotency key, what earlier steps returned, (for the steps
    run after a failure) why the saga failed, and the context its starter stored with it."""

    saga_id: str
    input: I
    step: str
    results: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    context: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Deterministic per saga and step: a retried or resumed step sends the same key, and so does its undo."""
        return self.key_of(self.step)

    def key_of(self, step: str) -> str:
        return f"{self.saga_id}:{step}"


Action = Callable[[Run[Any]], Awaitable[Any]]


class Calls(Protocol):
    """What the calls made within one attempt of a step saw, as the runner's `calls` hook records them: how many
    were retries, and who answered last."""

    retries: int
    handled_by: str


@dataclass(frozen=True)
class Step:
    """`undo` compensates the action. A step `until_done` comes after the point of no return (its effect is
    not to be undone, e.g. confirming what was paid for): it is retried until it succeeds instead of failing the
    saga."""

    name: str
    action: Action
    undo: Action | None = None
    until_done: bool = False


@dataclass(frozen=True)
class Together:
    """Steps that run at the same time, as one stage of the saga: the stage ends when each of them has ended, and
    the saga goes on only if each succeeded. For steps that need nothing of each other's effects or results."""

    steps: tuple[Step, ...]

    def __init__(self, *steps: Step) -> None:
        if len(steps) < 2:
            raise ValueError("steps run together are two or more")
        object.__setattr__(self, "steps", steps)


@dataclass(frozen=True)
class Saga:
    """Stages run in order: a step, or steps run together. If one fails, the undos of the started steps run in
    reverse, then the steps `on_rejected`, in order (those that have not succeeded yet). A saga without
    `on_rejected` has no way back: each of its steps is retried until it succeeds."""

    name: str
    stages: tuple[tuple[Step, ...], ...]
    on_rejected: tuple[Step, ...]  # run last on the compensation path, with Run.reason set; they have no undo
    input_type: type

    def __init__(self, name: str, *stages: Step | Together, on_rejected: Step | tuple[Step, ...] | None,
                 input_type: type) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "stages", tuple(s.steps if isinstance(s, Together) else (s,) for s in stages))
        object.__setattr__(self, "on_rejected", (on_rejected,) if isinstance(on_rejected, Step) else
                           tuple(on_rejected or ()))
        object.__setattr__(self, "input_type", input_type)

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step, stage by stage (the order their undos run in, reversed)."""
        return tuple(step for stage in self.stages for step in stage)

    @property
    def every_step(self) -> tuple[Step, ...]:
        """The steps forward, then those run on the way back after a failure (named once each)."""
        forward = self.steps
        return forward + tuple(step for step in self.on_rejected if step.name not in {s.name for s in forward})

    @property
    def first(self) -> tuple[tuple[str, str], ...]:
        """The (step, action) pairs a new saga's run starts with: its first stage."""
        return tuple((step.name, EXECUTE) for step in self.stages[0])

    def encode(self, input_: Any) -> Any:
        """The input as JSON, for the saga log."""
        return _adapter(self.input_type).dump_python(input_, mode="json")

    def decode(self, data: Any) -> Any:
        return _adapter(self.input_type).validate_python(data)


@dataclass(frozen=True)
class Stopped:
    """How a run ended: the saga's state (ended, or parked for an operator) and what its steps returned."""

    state: str
    results: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _adapter(input_type: type) -> TypeAdapter[Any]:
    return TypeAdapter(input_type)  # building one costs more than the (de)coding it then does
