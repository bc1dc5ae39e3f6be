"""Log lines and trace context: what a line says about the work it was written for, and spans as JSON lines."""

import json
import logging
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from sagashop.kit import logs, telemetry

tracer = TracerProvider().get_tracer("test")


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("sagashop.test", logging.WARNING, __file__, 1, message, (), None)


def test_a_json_line_names_the_part_the_span_the_saga_and_the_request():
    saga, request = logs.saga_id.set("s-1"), logs.request_id.set("r-1")
    try:
        with tracer.start_as_current_span("work") as span:
            line = json.loads(logs.JsonFormatter("orchestrator").format(record("saga %s moved")))
    finally:
        logs.saga_id.reset(saga)
        logs.request_id.reset(request)

    context = span.get_span_context()
    assert line["level"] == "WARNING" and line["part"] == "orchestrator" and line["logger"] == "sagashop.test"
    assert line["message"] == "saga %s moved" and line["time"].endswith("+00:00")
    assert (line["trace_id"], line["span_id"]) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert (line["saga_id"], line["request_id"]) == ("s-1", "r-1")
    assert "order_id" not in line


def test_a_text_line_is_one_line_with_what_it_is_about_and_no_colour_off_a_terminal():
    token = logs.order_id.set("o-1")
    try:
        line = logs.TextFormatter("gateway", colour=False).format(record("placed"))
    finally:
        logs.order_id.reset(token)

    assert "\n" not in line and "\x1b[" not in line
    assert line.endswith("WARNING gateway sagashop.test: placed  order_id=o-1")


def test_a_traceparent_names_the_current_span_and_nothing_else_is_a_context():
    with tracer.start_as_current_span("start checkout") as span:
        parent = telemetry.traceparent()

    assert telemetry.span_context(parent) is not None
    assert telemetry.span_context(parent).span_id == span.get_span_context().span_id
    assert telemetry.traceparent() is None  # no span now
    assert telemetry.span_context(None) is None and telemetry.span_context("00-garbage") is None


def test_the_trace_file_gets_one_json_line_per_span_from_each_process_writing_to_it(tmp_path: Path):
    path = tmp_path / "spans.jsonl"
    for part in ("order", "payment"):  # two processes, as far as the file can tell
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(telemetry.JsonLinesExporter(path)))
        with provider.get_tracer("test").start_as_current_span(f"{part} work", kind=trace.SpanKind.SERVER):
            pass
        provider.shutdown()

    spans = [json.loads(line) for line in path.read_text().splitlines()]
    assert [span["name"] for span in spans] == ["order work", "payment work"]
    assert all(span["context"]["trace_id"].startswith("0x") for span in spans)


def test_an_unrecorded_span_continues_the_callers_trace_under_an_id_of_its_own(monkeypatch):
    monkeypatch.setattr(telemetry, "_recording", False)  # nothing exports spans
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with telemetry.rpc_span("/sagashop.v1.Inventory/ReserveStock", trace.SpanKind.SERVER,
                            telemetry.incoming([(telemetry.TRACEPARENT, caller)])) as served:
        passed_on = telemetry.span_context(telemetry.traceparent())
        with telemetry.span("inner") as inner:
            assert trace.get_current_span() is inner
        assert trace.get_current_span() is served
    with telemetry.span("a call nobody traced") as first, telemetry.span("another") as second:
        pass

    context = served.get_span_context()
    assert not served.is_recording()
    assert f"{context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert context.span_id not in (0, 0xB7AD6B7169203331) and not context.trace_flags.sampled
    assert passed_on is not None and passed_on.span_id == context.span_id  # what an outgoing call carries
    assert inner.get_span_context().trace_id == context.trace_id
    assert inner.get_span_context().span_id != context.span_id
    assert first.get_span_context().is_valid and second.get_span_context().trace_id == first.get_span_context().trace_id
    assert not trace.get_current_span().get_span_context().is_valid  # each block gave its span back
