"""What `sagashop canary run` prints: a row per look at a step (canary v2 / stable v1), then the decision."""

import json
from dataclasses import asdict
from typing import Any

from .analysis import Figures, Requests, Sagas, percent
from .run import Check, Outcome, Plan

COLUMNS = (("WEIGHT", 7), ("TIME", 6), ("SAGAS v2/v1", 13), ("COMPENSATED v2/v1", 19), ("UNAVAILABLE v2/v1", 19),
           ("P99 STEP v2/v1", 16), ("PARKED v2/v1", 14), ("REQUESTS v2/v1", 16), ("ERRORS v2/v1", 15),
           ("P99 REQUEST v2/v1", 19), ("VERDICT", 0))


def line(*cells: str) -> str:
    return "".join(f"{cell:<{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True)).rstrip()


def header() -> str:
    return line(*(name for name, _ in COLUMNS))


def value(number: float | None, form: str = "{:.3f}") -> str:
    return "-" if number is None else form.format(number)


def saga_cells(canary: Sagas | None, stable: Sagas | None) -> list[str]:
    if canary is None or stable is None:  # no saga part: its sagas are not told apart by its version
        return ["-"] * 5
    return [f"{canary.ended}/{stable.ended}",
            f"{percent(canary.compensation_rate)}/{percent(stable.compensation_rate)}",
            f"{percent(canary.unavailable_rate)}/{percent(stable.unavailable_rate)}",
            f"{value(canary.p99)}/{value(stable.p99)}s", f"{canary.parked}/{stable.parked}"]


def request_cells(canary: Requests, stable: Requests) -> list[str]:
    return [f"{canary.total}/{stable.total}", f"{percent(canary.error_rate)}/{percent(stable.error_rate)}",
            f"{value(canary.p99, '{:.0f}')}/{value(stable.p99, '{:.0f}')}ms"]


def row(check: Check) -> str:
    canary, stable = check.canary, check.stable
    return line(f"{check.weight}%", f"{check.seconds:.0f}s", *saga_cells(canary.sagas, stable.sagas),
                *request_cells(canary.requests, stable.requests), check.verdict.state)


def decision(plan: Plan, outcome: Outcome) -> list[str]:
    notes = sorted({note for check in outcome.checks for note in check.verdict.notes})
    lines = [f"note: {note}" for note in notes]
    if outcome.promoted:
        lines.append(f"promoted: {plan.service} v1 0 / v2 100, every step healthy")
    else:
        lines += [f"rolled back: {plan.service} v1 100 / v2 0"] + [f"reason: {reason}" for reason in outcome.reasons]
    if outcome.load is not None:
        lines.append(outcome.load.summary())
    return lines


def rounded(number: float | None, digits: int) -> float | None:
    return None if number is None else round(number, digits)


def figures_out(f: Figures) -> dict[str, Any]:
    requests = {"total": f.requests.total, "failed": f.requests.failed,
                "error_rate": round(f.requests.error_rate, 4), "p99_ms": rounded(f.requests.p99, 1)}
    if f.sagas is None:
        return {"sagas": None, "requests": requests}
    return {"sagas": {**asdict(f.sagas), "p99": rounded(f.sagas.p99, 4),
                      "compensation_rate": round(f.sagas.compensation_rate, 4),
                      "unavailable_rate": round(f.sagas.unavailable_rate, 4)},
            "requests": requests}


def as_json(plan: Plan, outcome: Outcome) -> str:
    return json.dumps({
        "service": plan.service, "decision": "promoted" if outcome.promoted else "rolled back",
        "reasons": outcome.reasons, "limits": asdict(plan.limits), "interval_seconds": plan.interval,
        "steps": [{"weight": c.weight, "seconds": round(c.seconds, 1), "verdict": c.verdict.state,
                   "reasons": c.verdict.reasons, "notes": c.verdict.notes,
                   "canary": figures_out(c.canary), "stable": figures_out(c.stable)} for c in outcome.checks],
        "load": None if outcome.load is None else {"answers": dict(outcome.load.answers),
                                                   "skipped": outcome.load.skipped},
    }, indent=2)
