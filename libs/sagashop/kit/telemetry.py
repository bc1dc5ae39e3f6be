"""Tracing, set up once per process by `configure()`: a TracerProvider naming the part (`service.name` =
sagashop-<part>, `service.version`), spans exported over OTLP/HTTP when the standard OTEL_EXPORTER_OTLP_* variables
name an endpoint (with none set, nothing is exported), and W3C trace context carried over every gRPC call.

SAGASHOP_TRACE_FILE is a debugging aid: every process also appends its spans to that file as JSON lines, one span
each, so the spans of a whole shop can be read without a collector (the e2e tests do)."""

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.engine import Engine

from .settings import Settings

OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACEPARENT = "traceparent"
W3C = TraceContextTextMapPropagator()
TRACER = trace.get_tracer("sagashop.grpc")  # follows the provider configure() sets
_recording = True  # whether spans are recorded (configure() decides); the SDK's default until then
_IDS = RandomIdGenerator()  # what the SDK draws ids with


class JsonLinesExporter(SpanExporter):
    """Appends spans to a file as JSON lines. Several processes may share the file: each export is one write to a
    file opened with O_APPEND, so lines never interleave."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        os.write(self.fd, "".join(span.to_json(indent=None) + "\n" for span in spans).encode())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        os.close(self.fd)


def configure(part: str, settings: Settings) -> None:
    """The process's tracer provider; call it before any server, channel, engine or Redis client is made."""
    resource = Resource.create({"service.name": f"sagashop-{part}", "service.version": settings.version})
    exported = settings.trace_file or any(os.environ.get(name) for name in OTLP_ENDPOINTS)
    # spans that go nowhere are not recorded (unless OTEL_TRACES_SAMPLER says otherwise); their trace and span
    # ids are still made and passed on, so logs and responses still carry them
    quiet = not exported and not os.environ.get("OTEL_TRACES_SAMPLER")
    global _recording
    _recording = not quiet
    provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF if quiet else None)
    if any(os.environ.get(name) for name in OTLP_ENDPOINTS):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads the other OTEL_* itself
    if settings.trace_file:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(settings.trace_file)))
    trace.set_tracer_provider(provider)
    if settings.redis_url and _recording:
        RedisInstrumentor().instrument()


def recording() -> bool:
    """Whether spans are recorded (an exporter or a sampler was configured): otherwise only their ids are made."""
    return _recording


@contextmanager
def span(name: str, *, tracer: trace.Tracer = TRACER, parent: Context | None = None,
         kind: trace.SpanKind = trace.SpanKind.INTERNAL, **options: Any) -> Iterator[trace.Span]:
    """A span, current while the block runs: the one way the shop starts its spans. When spans are recorded it is
    the tracer's (`options`: attributes, links, ...); when they are not, only the ids a recorded span would have
    had (the parent's trace id, or a new one, and a new span id), which logs, responses and outgoing calls carry.
    That skips the sampler and the SDK's wrapping, which every call would otherwise pay for nothing."""
    if _recording:
        with tracer.start_as_current_span(name, context=parent, kind=kind, **options) as recorded:
            yield recorded
        return
    above = trace.get_current_span(parent).get_span_context()
    unrecorded = trace.NonRecordingSpan(trace.SpanContext(
        above.trace_id if above.is_valid else _IDS.generate_trace_id(), _IDS.generate_span_id(), is_remote=False,
        trace_state=above.trace_state))
    token = otel_context.attach(trace.set_span_in_context(unrecorded, parent))
    try:
        yield unrecorded
    finally:
        otel_context.detach(token)


@contextmanager
def rpc_span(path: str, kind: trace.SpanKind, parent: Context | None = None) -> Iterator[trace.Span]:
    """The span of one gRPC call (`path` is `/package.Service/Method`), current while the call runs; `ended()`
    gives it the call's status. Named and labelled as OpenTelemetry's gRPC instrumentation names its spans."""
    if not _recording:  # no attributes to build
        with span(path, parent=parent, kind=kind) as unrecorded:
            yield unrecorded
        return
    service, _, method = path[1:].partition("/")
    with span(path, parent=parent, kind=kind, record_exception=False, set_status_on_exception=False,
              attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}) as recorded:
        yield recorded


def ended(span: trace.Span, code: grpc.StatusCode) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code != grpc.StatusCode.OK:
        span.set_status(trace.StatusCode.ERROR, code.name)


def outgoing(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """A call's metadata with the current span's context added, for the server to continue the trace."""
    parent = traceparent()
    return (*metadata, (TRACEPARENT, parent)) if parent else metadata


def incoming(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context | None:
    """The caller's trace context, from a call's metadata (None: the call starts a trace)."""
    for key, value in metadata or ():
        if key == TRACEPARENT:
            return W3C.extract({TRACEPARENT: value if isinstance(value, str) else value.decode()})
    return None


def trace_statements(engine: Engine) -> None:
    """A span per SQL statement of the process's engine (the instrumentor takes one engine per process), when
    spans are recorded: otherwise its hooks would cost every statement time for spans that go nowhere.
    Its release declares SQLAlchemy < 2.1, but the engine events it listens to are the same in 2.1."""
    instrumentor = SQLAlchemyInstrumentor()
    if _recording and not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(engine=engine, skip_dep_check=True)


def traceparent() -> str | None:
    """The W3C traceparent of the current span, if there is one."""
    carrier: dict[str, str] = {}
    W3C.inject(carrier)
    return carrier.get(TRACEPARENT)


def span_context(traceparent: str | None) -> trace.SpanContext | None:
    """The span a W3C traceparent names, if it is a valid one."""
    context = trace.get_current_span(W3C.extract({TRACEPARENT: traceparent or ""})).get_span_context()
    return context if context.is_valid else None
