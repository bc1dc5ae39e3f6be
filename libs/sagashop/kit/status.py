"""The one table between domain errors and gRPC status codes, used by servers and clients alike."""

from typing import Any

import grpc

from .errors import (
    Compensated,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Rejected,
    Unauthenticated,
    Unavailable,
)

STATUS: dict[type[DomainError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    Invalid: grpc.StatusCode.INVALID_ARGUMENT,
    Conflict: grpc.StatusCode.ALREADY_EXISTS,
    Rejected: grpc.StatusCode.FAILED_PRECONDITION,
    Compensated: grpc.StatusCode.ABORTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}
KIND = {status: kind for kind, status in STATUS.items()}
TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
ServerContext = grpc.aio.ServicerContext[Any, Any]  # a call's, for helpers that serve any method
ERROR_CODE = "error-code"  # trailing metadata key holding DomainError.code
SERVED_BY = "x-served-by"  # trailing metadata key holding "<service>@<version>", on every answer
ROUTE = "x-sagashop-route"  # request metadata: the version set (v1, v2) a saga's calls are pinned to


def trailers(context: ServerContext, *pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """An aborted call's trailing metadata: what the call had set (who served it) and `pairs`."""
    return (*(context.trailing_metadata() or ()), *pairs)


def status_of(error: DomainError) -> grpc.StatusCode:
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)


def error_from(code: grpc.StatusCode, details: str, error_code: str | None, service: str) -> DomainError:
    """The domain error a caller sees for a failed call; anything unexpected is `<service>_unavailable`."""
    kind = KIND.get(code)
    if kind is None or kind is Unavailable:
        return Unavailable(f"{service} did not answer: {code.name}", code=f"{service}_unavailable")
    return kind(details, code=error_code)
