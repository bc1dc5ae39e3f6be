"""The campaign's report, for people (text) and scripts (JSON)."""

import json
from dataclasses import asdict, fields, is_dataclass
from typing import Any

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
             *_events(report),
             f"violations: {len(report.violations)}", *(f"  {v}" for v in report.violations)]
    return "\n".join(lines)


def _events(report: Report) -> list[str]:
    done, seen = report.events, report.event_audit
    sink = "not visible from here" if seen.sink_messages is None else seen.sink_messages
    return [f"event-path faults: {sum(done.fired.values())}",
            *(f"  {n:>6}  {kind}" for kind, n in sorted(done.fired.items())),
            *(f"  skipped {kind}: {why}" for kind, why in sorted(done.skipped.items())),
            f"relay crashes injected: {report.relay_crashes}, poison events: {len(done.poison)}",
            f"event audit: consumers agreed after {seen.catch_up_seconds}s; notifications {seen.notifications}, "
            f"sink messages {sink}, dead letters {len(seen.dead_letters)}, "
            f"outbox depth {sum(seen.outbox_depth.values()):g}",
            f"rebuild of reporting: {seen.rebuild.get('events', '?')} events in {seen.rebuild.get('seconds', '?')}s"]


def as_json(plan: Plan, report: Report) -> str:
    return json.dumps({"plan": asdict(plan), **_plain(report)}, indent=2, sort_keys=True)


def _plain(value: Any) -> Any:
    """The report as JSON's types. (Not dataclasses.asdict: it copies a Counter by counting its items as keys.)"""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(item) for item in value]
    return value
