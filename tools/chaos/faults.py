"""Random fault rules on every saga step and compensation, drawn from the campaign's seeded generator."""

import random
from typing import Any

TARGETS = [  # (service, method): each saga step, its compensation, and the order's own moves
    ("inventory", "ReserveStock"), ("inventory", "ReleaseStock"), ("inventory", "CommitStock"),
    ("payment", "Charge"), ("payment", "Refund"), ("shipping", "CreateShipment"),
    ("shipping", "CancelShipment"), ("order", "CreateOrder"), ("order", "ApproveOrder"), ("order", "RejectOrder"),
]
STEPS = ["reserve_stock", "charge_payment", "create_shipment", "commit_stock", "approve_order"]
ERRORS = ["UNAVAILABLE", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", None]


def random_rule(rng: random.Random) -> dict[str, Any]:
    service, method = rng.choice(TARGETS)
    error = rng.choice(ERRORS)
    return {"service": service, "method": method, "error": error, "rate": round(rng.uniform(0.05, 0.5), 2),
            "count": rng.choice([None, 1, 3, 10]), "delay_ms": rng.choice([0, 0, 50, 300, 1500]),
            "after_commit": error is not None and rng.random() < 0.3}


def crash_rule(rng: random.Random) -> dict[str, Any]:
    """Makes the orchestrator die before or after one saga step's call, once."""
    return {"service": "orchestrator", "method": rng.choice(STEPS), "crash": rng.choice(["before", "after"]),
            "rate": 1.0, "count": 1}
