"""The generic saga engine: steps and their undos, a persisted log, a runner that resumes from it."""

from .definition import (
    ABORTED,
    ACTIVE,
    COMPENSATED,
    COMPENSATING,
    NEEDS_ATTENTION,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    Run,
    Saga,
    Step,
    Together,
)
from .runner import SagaRunner
from .store import AuditRecord, LeaseLost, Outcome, SagaRecord, SagaStore, StepRecord, new_record

__all__ = ["ABORTED", "ACTIVE", "COMPENSATED", "COMPENSATING", "NEEDS_ATTENTION", "RUNNING", "SUCCEEDED",
           "TERMINAL", "AuditRecord", "LeaseLost", "Outcome", "Run", "Saga", "SagaRecord", "SagaRunner", "SagaStore",
           "Step", "StepRecord", "Together", "new_record"]
