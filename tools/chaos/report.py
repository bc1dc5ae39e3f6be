"""The campaign's report, for people (text) and scripts (JSON)."""

import json
from dataclasses import asdict

from .campaign import Plan, Report


def text(plan: Plan, report: Report) -> str:
    lines = [f"chaos campaign: seed {plan.seed}, {sum(report.outcomes.values())} orders, "
             f"concurrency {plan.concurrency}, {plan.replicas} orchestrator replicas"
             + (f", reservations swept after {plan.reservation_ttl}s" if plan.reservation_ttl else ""),
             "orders by outcome:", *(f"  {n:>6}  {outcome}" for outcome, n in report.outcomes.most_common()),
             f"faults fired: {sum(report.faults_fired.values())}",
             *(f"  {n:>6}  {target}" for target, n in report.faults_fired.most_common() if n),
             f"orchestrator crashes injected: {report.crashes}, replicas killed: {report.kills}",
             f"cancellations: {report.cancelled}, parked sagas retried: {len(report.parked_retried)}",
             f"time to quiesce: {report.quiesce_seconds}s",
             "memory (MiB, first/max/last sample while ordering):",
             *(f"  {part:<13} {m[0]:>7} {max(m):>7} {m[-1]:>7}" for part, m in sorted(report.memory_mib.items())),
             f"violations: {len(report.violations)}", *(f"  {v}" for v in report.violations)]
    return "\n".join(lines)


def as_json(plan: Plan, report: Report) -> str:
    fields = {name: dict(value) if isinstance(value, dict) else value for name, value in vars(report).items()}
    return json.dumps({"plan": asdict(plan), **fields}, indent=2, sort_keys=True)
