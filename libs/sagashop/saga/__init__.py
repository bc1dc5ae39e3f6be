"""The generic saga engine: steps and their undos, a persisted log, a runner that resumes from it."""

from .definition import COMPENSATED, COMPENSATING, RUNNING, SUCCEEDED, TERMINAL, Run, Saga, Step
from .runner import SagaRunner
from .store import SagaRecord, SagaStore, StepRecord, new_record

__all__ = ["COMPENSATED", "COMPENSATING", "RUNNING", "SUCCEEDED", "TERMINAL", "Run", "Saga", "SagaRecord",
           "SagaRunner", "SagaStore", "Step", "StepRecord", "new_record"]
