"""Every error leaves the gateway as application/problem+json (RFC 9457) with a stable `code`."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from sagashop.kit.errors import (
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

from .events import EventsUnavailable

log = logging.getLogger(__name__)
HTTP_STATUS: dict[type[DomainError], int] = {
    Invalid: 422, NotFound: 404, Conflict: 409, Rejected: 409, Compensated: 409,
    Unauthenticated: 401, Forbidden: 403, Unavailable: 503, TooMany: 429, EventsUnavailable: 503,
}
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
              415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited"}
MEANING = {400: "bad_request: the body could not be read", 401: "unauthorized (or invalid_credentials)",
           403: "forbidden: this needs the admin role", 404: "not_found", 409: "the request conflicts with the state",
           413: "payload_too_large", 415: "unsupported_media_type: send JSON", 422: "validation_error",
           429: "rate_limited: try again after Retry-After seconds", 503: "service_unavailable: try again after "
           "Retry-After seconds"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An error (RFC 9457): `code` is the stable, machine-readable part."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None  # a validation_error's fields


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body = {"type": f"/problems/{code}", "title": code.replace("_", " ").capitalize(), "status": status,
            "detail": detail, "code": code, **extra}
    return JSONResponse(body, status, headers=headers, media_type="application/problem+json")


async def domain_error(request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, DomainError)
    status = next(HTTP_STATUS[kind] for kind in type(e).__mro__ if kind in HTTP_STATUS)
    if isinstance(e, Unavailable):  # which backend is down is ours to know, not the client's
        log.warning("%s %s: %s", request.method, request.url.path, e.code)
        return problem(503, "service_unavailable", "a service is unavailable; try again", {"Retry-After": "1"})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after := getattr(e, "retry_after", None):
        headers["Retry-After"] = str(retry_after)
    return problem(status, e.code, e.detail, headers)


async def validation_error(request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, RequestValidationError)
    errors = [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in e.errors()]
    detail = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in errors)
    return problem(422, "validation_error", detail, errors=errors)


async def http_error(request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, HTTPException)
    code = HTTP_CODES.get(e.status_code, "error")
    detail = e.detail if isinstance(e.detail, str) else code.replace("_", " ")
    return problem(e.status_code, code, detail, dict(e.headers) if e.headers else None)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the problems a route may answer (as_problem_json files them under their type)."""
    return {status: {"model": Problem, "description": MEANING[status],
                     **({"headers": RETRY_AFTER} if status in (429, 503) else {})} for status in statuses}


def as_problem_json(openapi: dict[str, Any]) -> dict[str, Any]:
    """FastAPI files every declared answer under application/json; an error's is application/problem+json."""
    for operation in (op for path in openapi["paths"].values() for op in path.values()):
        for status, answer in operation.get("responses", {}).items():
            content = answer.get("content", {})
            if status[0] in "45" and "application/json" in content:
                content["application/problem+json"] = content.pop("application/json")
    return openapi


def install(app: FastAPI) -> None:
    """Problem answers for errors raised in routes (an unexpected one is the Edge's: see security.py)."""
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
