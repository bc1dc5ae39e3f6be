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
    TooMany,
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
    TooMany: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
# a transient status is the callee's trouble (its RESOURCE_EXHAUSTED included: a message too big, an injected
# fault), unless the callee says it refused on purpose (TooMany, with its error code)
KIND = {status: kind for kind, status in STATUS.items() if status not in TRANSIENT}
ServerContext = grpc.aio.ServicerContext[Any, Any]  # a call's, for helpers that serve any method
ERROR_CODE = "error-code"  # trailing metadata key holding DomainError.code
SERVED_BY = "x-served-by"  # trailing metadata key holding "<service>@<version>", on every answer
ROUTE = "x-sagashop-route"  # request metadata: the version set (v1, v2) a saga's calls are pinned to


def trailers(context: ServerContext, *pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """An aborted call's trailing metadata: what the call had set (who served it) and `pairs`."""
    return (*(context.trailing_metadata() or ()), *pairs)


def status_of(error: DomainError) -> grpc.StatusCode:
    return next(STATUS[kind] for kind in type(error).__mro__ if kind in STATUS)


def refused_on_purpose(code: grpc.StatusCode, error_code: str | None) -> bool:
    """Whether a RESOURCE_EXHAUSTED is a TooMany the callee chose to answer, not a failure of the callee."""
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and error_code == TooMany.code


def error_from(code: grpc.StatusCode, details: str, error_code: str | None, service: str) -> DomainError:
    """The domain error a caller sees for a failed call; anything unexpected is `<service>_unavailable`."""
    if refused_on_purpose(code, error_code):
        return TooMany(details)
    kind = KIND.get(code)
    if kind is None or kind is Unavailable:
        return Unavailable(f"{service} did not answer: {code.name}", code=f"{service}_unavailable")
    return kind(details, code=error_code)
