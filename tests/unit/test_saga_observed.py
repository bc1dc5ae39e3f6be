"""What the engine tells operators: a span per run and per step attempt, in the trace the saga was started in (or
linked to it), and the sagas' metrics."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from sagashop.kit.db import database
from sagashop.kit.errors import Rejected
from sagashop.kit.settings import Settings
from sagashop.saga import COMPENSATED, Run, Saga, SagaRunner, SagaStore, Step, Telemetry, new_record


@pytest.fixture(scope="module")
def exported() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (it can be set once): it exports into memory while these tests run."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.shutdown()  # keeps no more spans


@pytest.fixture
async def store(tmp_path: Path, exported: InMemorySpanExporter):
    engine = await database(Settings(data_dir=tmp_path), "orchestrator")
    exported.clear()
    yield SagaStore(engine, owner="me", lease=10)
    await engine.dispose()


async def nothing(run: Run[dict]) -> None:
    return None


async def decline(run: Run[dict]) -> None:
    raise Rejected("no", code="payment_declined")


# as the orchestrator tells it: a saga's correlation id is its order's, and its pins label its metrics
TELEMETRY = Telemetry(correlation="order.id", labels={"payment_version": ("v1", "v2")})
SAGA = Saga("observed", Step("reserve", nothing, undo=nothing), Step("charge", decline, undo=nothing),
            on_rejected=Step("reject", nothing), input_type=dict)


async def started(store: SagaStore, saga_id: str):
    """A saga created inside the span of the call that starts it, as StartCheckout does."""
    with trace.get_tracer("test").start_as_current_span("StartCheckout") as call:
        record, _ = await store.create(new_record(SAGA.name, saga_id, f"order-{saga_id}", None, "f", {},
                                                  {"payment_version": "v1"}),
                                       first=SAGA.first)
    return record, call.get_span_context()


def runner(store: SagaStore) -> SagaRunner:
    return SagaRunner(store, telemetry=TELEMETRY)


def saga_spans(exported: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exported.get_finished_spans() if "saga.name" in (s.attributes or {})]


async def test_a_run_in_the_starting_call_is_its_child_with_a_span_per_step_attempt_and_undo(store, exported):
    record, call = await started(store, "a")
    with trace.use_span(trace.NonRecordingSpan(call)):
        assert (await runner(store).run(SAGA, record)).state == COMPENSATED

    spans = saga_spans(exported)
    run = next(s for s in spans if s.name == "saga observed")
    assert run.parent.span_id == call.span_id and not run.links
    assert {s.context.trace_id for s in spans} == {call.trace_id}
    assert dict(run.attributes) == {"saga.id": "a", "saga.name": "observed", "order.id": "order-a",
                                    "saga.payment_version": "v1", "service.version": "v1"}
    steps = [(s.attributes["saga.step"], s.attributes["saga.action"]) for s in spans if s is not run]
    assert steps == [("reserve", "execute"), ("charge", "execute"), ("charge", "compensate"), ("reserve", "compensate"),
                     ("reject", "execute")]  # a started step is undone, even the one that failed
    assert all(s.parent.span_id == run.context.span_id for s in spans if s is not run)
    charge = next(s for s in spans if s.attributes["saga.step"] == "charge" if s is not run)
    assert charge.attributes["saga.error_code"] == "payment_declined" and not charge.status.is_ok


async def test_a_run_resumed_outside_the_starting_call_starts_a_trace_linked_to_it(store, exported):
    record, call = await started(store, "b")
    await runner(store).run(SAGA, record)  # as a lease upkeep resumes it: no current span

    run = next(s for s in saga_spans(exported) if s.name == "saga observed")
    assert run.context.trace_id != call.trace_id and run.parent is None
    assert [link.context.span_id for link in run.links] == [call.span_id]


async def test_an_ended_saga_is_counted_by_its_outcome_and_reason(store):
    def compensated() -> float:
        return REGISTRY.get_sample_value("sagashop_saga_completed_total", {
            "saga": "observed", "outcome": "compensated", "failure_reason": "payment_declined",
            "payment_version": "v1", "version": "v1"}) or 0

    before = compensated()
    record, _ = await started(store, "c")
    await runner(store).run(SAGA, record)

    assert compensated() == before + 1
    assert REGISTRY.get_sample_value("sagashop_saga_in_flight", {"saga": "observed", "version": "v1"}) == 0
