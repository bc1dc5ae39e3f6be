"""The generic saga engine: steps and their undos, a persisted log, a runner that resumes from it."""

from .definition import (
    ABORTED,
    ACTIVE,
    COMPENSATED,
    COMPENSATING,
    NEEDS_ATTENTION,
    RUNNING,
    STATES,
    SUCCEEDED,
    TERMINAL,
    Calls,
    Run,
    Saga,
    SagaState,
    Step,
    Stopped,
    Together,
)
from .observe import Telemetry
from .records import AuditRecord, Crowded, LeaseLost, Outcome, SagaRecord, StepRecord, new_record
from .runner import SagaRunner
from .store import SagaStore

__all__ = ["ABORTED", "ACTIVE", "COMPENSATED", "COMPENSATING", "NEEDS_ATTENTION", "RUNNING", "STATES", "SUCCEEDED",
           "TERMINAL", "AuditRecord", "Calls", "Crowded", "LeaseLost", "Outcome", "Run", "Saga", "SagaRecord",
           "SagaRunner", "SagaState", "SagaStore", "Step", "StepRecord", "Stopped", "Telemetry", "Together",
           "new_record"]
