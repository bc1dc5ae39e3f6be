"""Random fault rules on every step, undo and rejection of the order sagas, drawn from the campaign's seeded
generator. The steps are read from the sagas as the orchestrator defines them, so a step added there is faulted
here too (or the campaign refuses to start, if CALLS does not say what it calls)."""

import functools
import random
from typing import Any

from sagashop.saga import Saga
from services.orchestrator.checkout import cancellation_saga, checkout_saga

CALLS = {  # the service and gRPC method each step or undo of the order sagas calls, by its name
    "create_order": ("order", "CreateOrder"), "approve_order": ("order", "ApproveOrder"),
    "reject_order": ("order", "RejectOrder"), "cancel_order": ("order", "CancelOrder"),
    "reserve_stock": ("inventory", "ReserveStock"), "release_stock": ("inventory", "ReleaseStock"),
    "commit_stock": ("inventory", "CommitStock"),
    "charge_payment": ("payment", "Charge"), "refund_payment": ("payment", "Refund"),
    "create_shipment": ("shipping", "CreateShipment"), "cancel_shipment": ("shipping", "CancelShipment"),
}
ERRORS = ["UNAVAILABLE", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", None]


class _Unwired:
    """Stands in for the sagas' step functions: the definitions are only read here, never run, so each step and
    undo is a function that bears the name the definition gives it."""

    def __getattr__(self, name: str) -> Any:
        async def unwired(*_: Any) -> None:
            raise AssertionError(f"{name} is only named here")

        unwired.__name__ = name
        return unwired


@functools.cache
def sagas() -> tuple[Saga, ...]:
    steps: Any = _Unwired()
    return checkout_saga(steps), cancellation_saga(steps)


def step_names() -> list[str]:
    """Every step of the sagas, their rejection steps included: where the orchestrator can be made to crash."""
    return sorted({step.name for saga in sagas() for step in saga.every_step})


def operations() -> list[str]:
    """The name of every step, undo and rejection step of the sagas: what they do, each once."""
    names = {step.name for saga in sagas() for step in saga.every_step}
    return sorted(names | {step.undo.__name__ for saga in sagas() for step in saga.steps if step.undo})


def targets() -> list[tuple[str, str]]:
    """(service, method) of each call the sagas make; KeyError for an operation CALLS does not know."""
    return sorted({CALLS[name] for name in operations()})


def random_rule(rng: random.Random, targets: list[tuple[str, str]]) -> dict[str, Any]:
    service, method = rng.choice(targets)
    error = rng.choice(ERRORS)
    return {"service": service, "method": method, "error": error, "rate": round(rng.uniform(0.05, 0.5), 2),
            "count": rng.choice([None, 1, 3, 10]), "delay_ms": rng.choice([0, 0, 50, 300, 1500]),
            "after_commit": error is not None and rng.random() < 0.3}


def crash_rule(rng: random.Random, steps: list[str]) -> dict[str, Any]:
    """Makes the orchestrator die before or after one saga step's call (forward or undo: a step's undo is a
    crash point under the step's name), once."""
    return {"service": "orchestrator", "method": rng.choice(steps), "crash": rng.choice(["before", "after"]),
            "rate": 1.0, "count": 1}
