"""The campaign's report, for people (text) and scripts (JSON)."""

import json
from dataclasses import asdict

from .campaign import Plan, Report


def text(plan: Plan, report: Report) -> str:
    lines = [f"chaos campaign: seed {plan.seed}, {sum(report.outcomes.values())} orders, "
             f"concurrency {plan.concurrency}, {plan.replicas} orchestrator replicas",
             "orders by outcome:", *(f"  {n:>6}  {outcome}" for outcome, n in report.outcomes.most_common()),
             f"faults fired: {sum(report.faults_fired.values())}",
             *(f"  {n:>6}  {target}" for target, n in report.faults_fired.most_common() if n),
             f"orchestrator crashes injected: {report.crashes}, replicas killed: {report.kills}",
             f"cancellations: {report.cancelled}, parked sagas retried: {len(report.parked_retried)}",
             f"time to quiesce: {report.quiesce_seconds}s",
             f"violations: {len(report.violations)}", *(f"  {v}" for v in report.violations)]
    return "\n".join(lines)


def as_json(plan: Plan, report: Report) -> str:
    return json.dumps({"plan": asdict(plan), **asdict(report)}, indent=2, sort_keys=True)
