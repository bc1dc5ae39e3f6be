"""What every gRPC server does around each call: say who served it, and turn domain errors into statuses."""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from .errors import DomainError
from .faults import FaultRules
from .status import ERROR_CODE, SERVED_BY, status_of

log = logging.getLogger(__name__)
FAULT_SERVICE = "/sagashop.v1.FaultService/"  # manages the rules; never subject to them


class ServiceEdge(grpc.aio.ServerInterceptor):
    """Sends `x-served-by: <service>@<version>` first; applies the fault rules, if any; maps a DomainError to its
    status plus an `error-code` trailer; an unexpected exception is logged and answered INTERNAL, no details."""

    def __init__(self, served_by: str, faults: FaultRules | None = None) -> None:
        self.served_by = ((SERVED_BY, served_by),)
        self.faults = faults

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith("/grpc."):  # health, reflection
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, details.method,
                            None if details.method.startswith(FAULT_SERVICE) else self.faults),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, details.method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, inner: Callable[..., Awaitable[Any]], method: str,
               faults: FaultRules | None) -> Callable[..., Awaitable[Any]]:
        name = method.rsplit("/", 1)[-1]

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.send_initial_metadata(self.served_by)
            try:
                if faults is None:
                    return await inner(request, context)
                return await faults.around(name, lambda: inner(request, context), context)
            except Exception as e:  # noqa: BLE001 - every failure leaves with a status
                await _abort(context, e, method)

        return unary

    def _stream(self, inner: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await context.send_initial_metadata(self.served_by)
            try:
                async for reply in inner(request, context):
                    yield reply
            except Exception as e:  # noqa: BLE001
                await _abort(context, e, method)

        return stream


async def _abort(context: grpc.aio.ServicerContext, error: Exception, method: str) -> None:
    if isinstance(error, DomainError):
        await context.abort(status_of(error), error.detail, trailing_metadata=((ERROR_CODE, error.code),))
    if isinstance(error, grpc.aio.AbortError):
        raise error
    log.exception("%s failed", method)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error", trailing_metadata=((ERROR_CODE, "internal"),))
