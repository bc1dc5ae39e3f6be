"""A saga is steps run forward in order, each with the undo that compensates it; steps that depend on nothing
of each other can run together. No I/O here."""

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

I = TypeVar("I")  # noqa: E741 - the saga's input

RUNNING, COMPENSATING, SUCCEEDED, COMPENSATED = "RUNNING", "COMPENSATING", "SUCCEEDED", "COMPENSATED"
NEEDS_ATTENTION, ABORTED = "NEEDS_ATTENTION", "ABORTED"  # parked for an operator; ended by one
ACTIVE = (RUNNING, COMPENSATING)  # an orchestrator holds a lease on it and drives it
TERMINAL = frozenset({SUCCEEDED, COMPENSATED, ABORTED})
EXECUTE, COMPENSATE = "execute", "compensate"


@dataclass(frozen=True)
class Run(Generic[I]):
    """What a step sees: the saga's input, its own idempotency key, what earlier steps returned, and (for the
    rejection handler) why the saga failed."""

    saga_id: str
    input: I
    step: str
    results: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    route: str = "v1"  # the version set the saga is pinned to

    @property
    def key(self) -> str:
        """Deterministic per saga and step: a retried or resumed step sends the same key, and so does its undo."""
        return self.key_of(self.step)

    def key_of(self, step: str) -> str:
        return f"{self.saga_id}:{step}"


Action = Callable[[Run[Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Step:
    """`undo` compensates the action. A step `until_done` comes after the point of no return (its effect is
    not to be undone, e.g. approving the order): it is retried until it succeeds instead of failing the saga."""

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
    reverse, then `on_rejected`. A saga without `on_rejected` has no way back: each of its steps is retried until
    it succeeds."""

    name: str
    stages: tuple[tuple[Step, ...], ...]
    on_rejected: Step | None  # runs last on the compensation path, with Run.reason set; it has no undo
    input_type: type

    def __init__(self, name: str, *stages: Step | Together, on_rejected: Step | None, input_type: type) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "stages", tuple(s.steps if isinstance(s, Together) else (s,) for s in stages))
        object.__setattr__(self, "on_rejected", on_rejected)
        object.__setattr__(self, "input_type", input_type)

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step, stage by stage (the order their undos run in, reversed)."""
        return tuple(step for stage in self.stages for step in stage)

    @property
    def first(self) -> tuple[tuple[str, str], ...]:
        """The (step, action) pairs a new saga's run starts with: its first stage."""
        return tuple((step.name, EXECUTE) for step in self.stages[0])

    def encode(self, input_: Any) -> Any:
        """The input as JSON, for the saga log."""
        return _adapter(self.input_type).dump_python(input_, mode="json")

    def decode(self, data: Any) -> Any:
        return _adapter(self.input_type).validate_python(data)


@functools.cache
def _adapter(input_type: type) -> TypeAdapter[Any]:
    return TypeAdapter(input_type)  # building one costs more than the (de)coding it then does
