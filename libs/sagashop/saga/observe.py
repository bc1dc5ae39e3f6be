"""What the engine tells operators about the sagas it runs: a span per run and one per attempt of a step or undo,
the sagas' Prometheus metrics, and the saga and order of every log line written meanwhile."""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from sagashop.kit import logs, metrics, telemetry
from sagashop.kit.errors import DomainError
from sagashop.kit.grpcclient import CallRecord

from .definition import COMPENSATED, NEEDS_ATTENTION, SUCCEEDED
from .store import SagaRecord

tracer = trace.get_tracer(__name__)
# `route` is the version set a saga is pinned to (v1 stable, v2 canary), so a canary's outcomes can be told apart.
STARTED = Counter("sagashop_saga_started_total", "sagas whose first run began here", ["saga", "route", "version"])
COMPLETED = Counter("sagashop_saga_completed_total", "sagas that ended: succeeded, or compensated for a failure_reason",
                    ["saga", "outcome", "failure_reason", "route", "version"])
PARKED = Counter("sagashop_saga_parked_total", "sagas parked for an operator (NEEDS_ATTENTION)",
                 ["saga", "route", "version"])
IN_FLIGHT = Gauge("sagashop_saga_in_flight", "sagas this process is driving now", ["saga", "version"])
STEP_SECONDS = Histogram("sagashop_saga_step_seconds", "time of one attempt of a step (execute) or undo (compensate)",
                         ["saga", "step", "action", "route", "version"])
RETRIES = Counter("sagashop_saga_step_retries_total", "retries of a step or undo, and of the calls it makes",
                  ["saga", "step", "action", "route", "version"])
CODE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")  # an error code; anything else (an operator's words) is "other"
ROUTES = ("v1", "v2")  # the `route` label's values; any other route in the saga log is counted as "other"
_run: ContextVar[dict[str, str]] = ContextVar("sagashop_saga_run")  # the span attributes of the run under way


@contextmanager
def running(record: SagaRecord, *, first: bool) -> Iterator[None]:
    """One run of a saga: a span that is a child of the current one (the call that started or resumed the run
    here) or else starts a trace; it links to the trace the saga was started in when that is another one."""
    version = metrics.version()
    attributes = {"saga.id": record.id, "saga.name": record.name, "order.id": record.correlation_id,
                  "saga.route": record.route, "service.version": version}
    origin = telemetry.span_context(record.traceparent)
    here = trace.get_current_span().get_span_context()
    links = [trace.Link(origin)] if origin and origin.trace_id != here.trace_id else []
    if first:
        STARTED.labels(record.name, route_label(record.route), version).inc()
    in_flight = IN_FLIGHT.labels(record.name, version)
    in_flight.inc()
    tokens = _run.set(attributes), logs.saga_id.set(record.id), logs.order_id.set(record.correlation_id)
    try:
        with telemetry.span(f"saga {record.name}", tracer=tracer, attributes=attributes, links=links):
            yield
    finally:
        in_flight.dec()
        for var, token in zip((_run, logs.saga_id, logs.order_id), tokens, strict=True):
            var.reset(token)


@contextmanager
def attempt(step: str, action: str, number: int, calls: CallRecord) -> Iterator[None]:
    """One attempt of a step or undo, inside running(); a DomainError leaves its code on the span."""
    run = _run.get()
    labels = (run["saga.name"], step, action, route_label(run["saga.route"]), run["service.version"])
    started = time.perf_counter()
    attributes = {**run, "saga.step": step, "saga.action": action, "saga.attempt": number}
    try:
        with telemetry.span(f"{step} {action}", tracer=tracer, attributes=attributes) as span:
            try:
                yield
            except DomainError as e:
                span.set_attribute("saga.error_code", e.code)
                raise
    finally:
        STEP_SECONDS.labels(*labels).observe(time.perf_counter() - started)
        if retried := calls.retries + (number > 1):  # the step's calls retried, and the step itself
            RETRIES.labels(*labels).inc(retried)


def transitioned(state: str, reason: str) -> None:
    """The run under way moved its saga to `state`."""
    run = _run.get()
    trace.get_current_span().add_event("saga.state", {"saga.state": state, "saga.failure_reason": reason})
    saga, route, version = run["saga.name"], route_label(run["saga.route"]), run["service.version"]
    if state == SUCCEEDED:
        COMPLETED.labels(saga, "succeeded", "", route, version).inc()
    elif state == COMPENSATED:
        COMPLETED.labels(saga, "compensated", reason if CODE.match(reason) else "other", route, version).inc()
    elif state == NEEDS_ATTENTION:
        PARKED.labels(saga, route, version).inc()


def route_label(route: str) -> str:
    return route if route in ROUTES else "other"
