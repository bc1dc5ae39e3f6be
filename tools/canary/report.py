"""What `sagashop canary run` prints: a row per look at a step (canary v2 / stable v1), then the decision."""

import json
from dataclasses import asdict
from typing import Any

from .analysis import Figures, percent
from .run import Check, Outcome, Plan

COLUMNS = (("WEIGHT", 7), ("TIME", 7), ("SAGAS v2/v1", 13), ("COMPENSATED v2/v1", 19), ("UNAVAILABLE v2/v1", 19),
           ("P99 STEP v2/v1", 17), ("PARKED v2/v1", 14), ("VERDICT", 0))


def line(*cells: str) -> str:
    return "".join(f"{cell:<{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True)).rstrip()


def header() -> str:
    return line(*(name for name, _ in COLUMNS))


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def row(check: Check) -> str:
    canary, stable = check.canary, check.stable
    return line(f"{check.weight}%", f"{check.seconds:.0f}s", f"{canary.ended}/{stable.ended}",
                f"{percent(canary.compensation_rate)}/{percent(stable.compensation_rate)}",
                f"{percent(canary.unavailable_rate)}/{percent(stable.unavailable_rate)}",
                f"{seconds(canary.p99)}/{seconds(stable.p99)}s", f"{canary.parked}/{stable.parked}",
                check.verdict.state)


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


def figures_out(f: Figures) -> dict[str, Any]:
    return {**asdict(f), "p99": None if f.p99 is None else round(f.p99, 4),
            "compensation_rate": round(f.compensation_rate, 4), "unavailable_rate": round(f.unavailable_rate, 4)}


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
