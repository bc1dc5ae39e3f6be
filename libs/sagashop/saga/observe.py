"""What the engine tells operators about the sagas it runs: a span per run and one per attempt of a step or undo,
the sagas' Prometheus metrics, and the saga of every log line written meanwhile.

Beyond the saga's name and the version of this process, what a saga's telemetry says comes from its context: each
context key is a span attribute `saga.<key>`, and the keys the orchestrator names also label the metrics."""

import re
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from opentelemetry import trace
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from sagashop.kit import logs, metrics, telemetry
from sagashop.kit.errors import DomainError

from .definition import COMPENSATED, NEEDS_ATTENTION, SUCCEEDED, Calls
from .records import SagaRecord

tracer = trace.get_tracer(__name__)
CODE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")  # an error code; anything else (an operator's words) is "other"
_run: ContextVar["_Run"] = ContextVar("sagashop_saga_run")  # the run under way


@dataclass(frozen=True)
class Metrics:
    started: Counter
    completed: Counter
    parked: Counter
    in_flight: Gauge
    step_seconds: Histogram
    retries: Counter


_made: dict[tuple[str, ...], Metrics] = {}


def _metrics(keys: tuple[str, ...]) -> Metrics:
    """The sagas' metrics, labelled by the context `keys` too. Prometheus holds one metric of a name, so a process
    has one set of keys: a test that asks for other keys replaces the metrics made for the last ones."""
    if (made := _made.get(keys)) is not None:
        return made
    for old in _made.values():
        for collector in vars(old).values():
            REGISTRY.unregister(collector)
    _made.clear()
    made = _made[keys] = Metrics(
        Counter("sagashop_saga_started_total", "sagas whose first run began here", ["saga", *keys, "version"]),
        Counter("sagashop_saga_completed_total", "sagas that ended: succeeded, or compensated for a failure_reason",
                ["saga", "outcome", "failure_reason", *keys, "version"]),
        Counter("sagashop_saga_parked_total", "sagas parked for an operator (NEEDS_ATTENTION)",
                ["saga", *keys, "version"]),
        Gauge("sagashop_saga_in_flight", "sagas this process is driving now", ["saga", "version"]),
        Histogram("sagashop_saga_step_seconds", "time of one attempt of a step (execute) or undo (compensate)",
                  ["saga", "step", "action", *keys, "version"]),
        Counter("sagashop_saga_step_retries_total", "retries of a step or undo, and of the calls it makes",
                ["saga", "step", "action", *keys, "version"]))
    return made


@dataclass(frozen=True)
class _Run:
    attributes: dict[str, str]  # of its spans
    labels: tuple[str, ...]  # the context keys' values, as metrics take them
    saga: str
    version: str
    metrics: Metrics


@dataclass(frozen=True)
class Telemetry:
    """`correlation`: the span attribute that holds a saga's correlation id. `labels`: the context keys that label
    the metrics, each with the values it may take (any other is counted as "other", so its series stay few)."""

    correlation: str = "saga.correlation_id"
    labels: Mapping[str, Collection[str]] = field(default_factory=dict)

    @contextmanager
    def running(self, record: SagaRecord, *, first: bool) -> Iterator[None]:
        """One run of a saga: a span that is a child of the current one (the call that started or resumed the run
        here) or else starts a trace; it links to the trace the saga was started in when that is another one."""
        version, m = metrics.version(), _metrics(tuple(self.labels))
        attributes = {"saga.id": record.id, "saga.name": record.name, self.correlation: record.correlation_id,
                      **{f"saga.{key}": value for key, value in record.context.items()}, "service.version": version}
        labels = tuple(v if (v := record.context.get(k, "")) in allowed else "other" for k, allowed in
                       self.labels.items())
        origin = telemetry.span_context(record.traceparent)
        here = trace.get_current_span().get_span_context()
        links = [trace.Link(origin)] if origin and origin.trace_id != here.trace_id else []
        if first:
            m.started.labels(record.name, *labels, version).inc()
        in_flight = m.in_flight.labels(record.name, version)
        in_flight.inc()
        tokens = _run.set(_Run(attributes, labels, record.name, version, m)), logs.saga_id.set(record.id)
        try:
            with telemetry.span(f"saga {record.name}", tracer=tracer, attributes=attributes, links=links):
                yield
        finally:
            in_flight.dec()
            _run.reset(tokens[0])
            logs.saga_id.reset(tokens[1])

    @contextmanager
    def attempt(self, step: str, action: str, number: int, calls: Calls) -> Iterator[None]:
        """One attempt of a step or undo, inside running(); a DomainError leaves its code on the span."""
        run = _run.get()
        m = run.metrics
        labels = (run.saga, step, action, *run.labels, run.version)
        started = time.perf_counter()
        attributes = {**run.attributes, "saga.step": step, "saga.action": action, "saga.attempt": number}
        try:
            with telemetry.span(f"{step} {action}", tracer=tracer, attributes=attributes) as span:
                try:
                    yield
                except DomainError as e:
                    span.set_attribute("saga.error_code", e.code)
                    raise
        finally:
            m.step_seconds.labels(*labels).observe(time.perf_counter() - started)
            if retried := calls.retries + (number > 1):  # the step's calls retried, and the step itself
                m.retries.labels(*labels).inc(retried)

    def transitioned(self, state: str, reason: str) -> None:
        """The run under way moved its saga to `state`."""
        run = _run.get()
        m = run.metrics
        trace.get_current_span().add_event("saga.state", {"saga.state": state, "saga.failure_reason": reason})
        if state == SUCCEEDED:
            m.completed.labels(run.saga, "succeeded", "", *run.labels, run.version).inc()
        elif state == COMPENSATED:
            code = reason if CODE.match(reason) else "other"
            m.completed.labels(run.saga, "compensated", code, *run.labels, run.version).inc()
        elif state == NEEDS_ATTENTION:
            m.parked.labels(run.saga, *run.labels, run.version).inc()
