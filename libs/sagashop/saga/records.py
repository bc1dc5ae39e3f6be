"""What the saga log holds, as values: a saga, one of its steps, how a step ended, an operator's action."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

from sagashop.kit import telemetry
from sagashop.kit.clock import now

from .definition import RUNNING


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]


Record = TypeVar("Record", bound=_Dataclass)

STEP_RUNNING, STEP_SUCCEEDED, STEP_FAILED = "RUNNING", "SUCCEEDED", "FAILED"


class LeaseLost(Exception):
    """Another orchestrator owns this saga now."""


class Crowded(Exception):
    """A saga not created: its subject has as many active sagas as it may (SagaStore.create's `at_most`)."""


@dataclass(frozen=True)
class SagaRecord:
    id: str
    name: str
    correlation_id: str
    business_key: str | None
    fingerprint: str
    input: Any
    state: str
    failure_reason: str
    created_at: datetime
    updated_at: datetime
    traceparent: str | None = None  # W3C trace context of the call that started the saga
    context: dict[str, str] = field(default_factory=dict)  # what its starter stored with it, for its steps
    subject: str | None = None  # whom it acts for (a customer): SagaStore.create may limit their active sagas


@dataclass(frozen=True)
class StepRecord:
    name: str
    action: str
    status: str
    attempts: int
    handled_by: str
    error: str
    result: Any
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Outcome:
    """How one step or undo ended: its status, the attempts it took (added to the log's count), who handled it,
    and its result or error."""

    name: str
    action: str
    status: str
    attempts: int
    handled_by: str
    error: str = ""
    result: Any = None

    def params(self, moment: datetime) -> dict[str, Any]:
        return {"p_name": self.name, "p_action": self.action, "p_status": self.status, "p_attempts": self.attempts,
                "p_handled_by": self.handled_by, "p_error": self.error[:500], "p_result": self.result,
                "p_finished_at": moment}


@dataclass(frozen=True)
class AuditRecord:
    action: str
    reason: str
    actor: str
    at: datetime


def new_record(name: str, saga_id: str, correlation_id: str, business_key: str | None, fingerprint: str,
               input_json: Any, context: dict[str, str] | None = None, subject: str | None = None) -> SagaRecord:
    """A saga starting now, in the current trace (its runs, wherever they happen, link back to it)."""
    moment = now()
    return SagaRecord(saga_id, name, correlation_id, business_key, fingerprint, input_json, RUNNING, "", moment,
                      moment, telemetry.traceparent(), context or {}, subject)


def from_row(cls: type[Record], row: Any) -> Record:
    return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})
