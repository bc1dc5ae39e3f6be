"""What the gateway tells operators: a span per request (continuing the caller's `traceparent`, and carried on
through every gRPC call), and per route template its requests by status and their durations."""

import time

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sagashop.kit import metrics, telemetry

REQUESTS = Counter("sagashop_http_requests_total", "HTTP requests answered, by route template and status",
                   ["route", "method", "status", "version"])
SECONDS = Histogram("sagashop_http_request_seconds", "time to answer an HTTP request, to the end of its body",
                    ["route", "method", "version"])
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other is "other"
UNTRACED = ("/healthz", "/readyz", "/readyz/self", "/metrics")  # probes and scrapes


class HttpMetrics:
    """ASGI middleware counting and timing every request by its route's template (never the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.templates: dict[int, str] = {}  # id of a route -> its whole path template (with its router's prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            route = self.template(scope)
            method, version = scope["method"] if scope["method"] in METHODS else "other", metrics.version()
            REQUESTS.labels(route, method, str(status), version).inc()
            SECONDS.labels(route, method, version).observe(time.perf_counter() - started)

    def template(self, scope: Scope) -> str:
        """The template of the route that answered (the router puts it in the scope), "unmatched" if none did."""
        if not self.templates:  # the routes are all there once requests come in
            contexts = iter_route_contexts(scope["app"].routes)
            self.templates = {id(c.original_route): c.path_format or "" for c in contexts}
        return self.templates.get(id(scope.get("route")), "unmatched")


class TraceContext:
    """ASGI middleware: the request's span when spans are not recorded, which is then only its ids (continuing
    the caller's `traceparent`, or a new trace), for the response, the log lines and every gRPC call to carry.
    OpenTelemetry's instrumentation, which also names the route and the status, is installed only when spans are
    recorded: otherwise it would spend the gateway's CPU on every request building spans that go nowhere."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        caller = [(telemetry.TRACEPARENT, value) for key, value in scope["headers"] if key == b"traceparent"]
        with telemetry.span("HTTP request", parent=telemetry.incoming(caller), kind=SpanKind.SERVER):
            await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Call it after every other middleware is added: the metrics see what the client sees, and the span is
    current for all of them."""
    app.add_middleware(HttpMetrics)
    if telemetry.recording():
        FastAPIInstrumentor.instrument_app(app, excluded_urls=",".join(UNTRACED), exclude_spans=["receive", "send"])
    else:
        app.add_middleware(TraceContext)
