"""What every gRPC server does around each call: trace it, say who served it, count it and time it, and turn
domain errors into statuses."""

from __future__ import annotations  # Handler is generic in grpc's stubs only

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeAlias, cast

import grpc
from opentelemetry import trace
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import DBAPIError, OperationalError

from . import metrics, telemetry
from .errors import DomainError
from .faults import FaultRules
from .status import ERROR_CODE, SERVED_BY, ServerContext, status_of, trailers

HEALTH_CHECK = "/grpc.health.v1.Health/Check"

log = logging.getLogger(__name__)
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
FAULT_SERVICE = "/sagashop.v1.FaultService/"  # manages the rules; never subject to them
MAX_DETAIL = 500  # longest error detail sent back in a trailer (details may quote the input)
HANDLED = Counter("sagashop_grpc_server_handled_total", "RPCs this server answered, by status code",
                  ["service", "method", "code", "version"])
HANDLING = Histogram("sagashop_grpc_server_handling_seconds", "time this server took to answer an RPC",
                     ["service", "method", "version"])


class Red:
    """Rate, errors and duration of one method, its metrics' labels bound once."""

    def __init__(self, full_method: str) -> None:
        service, _, method = full_method.lstrip("/").partition("/")
        self.labels = service, method, metrics.version()
        self.seconds = HANDLING.labels(*self.labels)
        self.handled: dict[grpc.StatusCode, Any] = {}  # code -> its bound counter

    def record(self, context: ServerContext, started: float) -> grpc.StatusCode:
        """Counts and times the call; returns its status code."""
        code = context.code() or (grpc.StatusCode.CANCELLED if context.cancelled() else grpc.StatusCode.OK)
        if (counter := self.handled.get(code)) is None:
            service, method, version = self.labels
            counter = self.handled[code] = HANDLED.labels(service, method, code.name, version)
        counter.inc()
        self.seconds.observe(time.perf_counter() - started)
        return code


class ServiceEdge(grpc.aio.ServerInterceptor):
    """Continues the caller's trace in a server span (not for FaultService: plumbing); answers
    `x-served-by: <service>@<version>` in the trailers, with the status (sent ahead as initial metadata, it would
    cost each call a write of its own on both sides); applies the fault rules, if any; maps a DomainError to its
    status plus an `error-code` trailer; an unexpected exception is logged and answered INTERNAL, no details.
    Each method's handler is wrapped once, on its first call."""

    def __init__(self, served_by: str, faults: FaultRules | None = None) -> None:
        self.served_by = ((SERVED_BY, served_by),)
        self.faults = faults
        self.wrapped: dict[str, Handler] = {}

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith("/grpc."):  # health, reflection: neither traced nor counted
            return self._health(handler) if details.method == HEALTH_CHECK else handler  # (a probe a second)
        if (wrapped := self.wrapped.get(details.method)) is None:
            wrapped = self.wrapped[details.method] = self._wrap(handler, details.method)
        return wrapped

    def _health(self, handler: Handler | None) -> Handler | None:
        """The health check says who answered it too: a probe of a pinned version (a canary's v2) learns whether
        it reached that version, or a v1 that answers for it (no mesh, no address of the v2's own)."""
        if handler is None or handler.unary_unary is None:
            return handler
        inner = cast(Callable[..., Awaitable[Any]], handler.unary_unary)  # an aio server's behaviours are async

        async def check(request: Any, context: ServerContext) -> Any:
            context.set_trailing_metadata(self.served_by)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(check, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)

    def _wrap(self, handler: Handler, method: str) -> Handler:
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, None if method.startswith(FAULT_SERVICE) else self.faults),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                # grpc's stubs type the behaviour as a plain iterator; on an aio server it is an async one
                self._stream(cast(Callable[..., AsyncIterator[Any]], handler.unary_stream), method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, inner: Callable[..., Awaitable[Any]], method: str,
               faults: FaultRules | None) -> Callable[..., Awaitable[Any]]:
        name, red, span_of = method.rsplit("/", 1)[-1], Red(method), _span_maker(method)

        async def unary(request: Any, context: ServerContext) -> Any:
            started = time.perf_counter()
            with span_of(context) as span:
                context.set_trailing_metadata(self.served_by)
                try:
                    if faults is None:
                        return await inner(request, context)
                    return await faults.around(name, lambda: inner(request, context), context)
                except Exception as e:  # noqa: BLE001 - every failure leaves with a status
                    await _abort(context, e, method)
                finally:
                    _end(span, red.record(context, started))

        return unary

    def _stream(self, inner: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
        red, span_of = Red(method), _span_maker(method)

        async def stream(request: Any, context: ServerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            with span_of(context) as span:
                context.set_trailing_metadata(self.served_by)
                try:
                    async for reply in inner(request, context):
                        yield reply
                except Exception as e:  # noqa: BLE001
                    await _abort(context, e, method)
                finally:
                    _end(span, red.record(context, started))

        return stream


def _span_maker(method: str) -> Callable[[ServerContext], AbstractContextManager[Any]]:
    """A server span per call of `method`, continuing the caller's trace; none for FaultService's calls."""
    if method.startswith(FAULT_SERVICE):
        return lambda context: nullcontext()
    return lambda context: telemetry.rpc_span(method, trace.SpanKind.SERVER,
                                              telemetry.incoming(context.invocation_metadata()))


def _end(span: Any, code: grpc.StatusCode) -> None:
    if span is not None:
        telemetry.ended(span, code)


async def _abort(context: ServerContext, error: Exception, method: str) -> None:
    if isinstance(error, DomainError):
        # details travel in a trailer: keep them short, whatever input they quote
        await context.abort(status_of(error), error.detail[:MAX_DETAIL],
                            trailing_metadata=trailers(context, (ERROR_CODE, error.code)))
    if isinstance(error, grpc.aio.AbortError):
        raise error
    if isinstance(error, DBAPIError) and (error.connection_invalidated or isinstance(error, OperationalError)):
        log.warning("%s: database unavailable: %s", method, error.orig)  # lost connection, locked, restarting
        await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable",
                            trailing_metadata=trailers(context, (ERROR_CODE, "database_unavailable")))
    log.exception("%s failed", method)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error",
                        trailing_metadata=trailers(context, (ERROR_CODE, "internal")))
