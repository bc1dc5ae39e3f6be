"""What every answer carries: an X-Request-Id (the caller's own, if it is a sane one, or a new one; it is in every
log line of the request too), the `traceparent` of the request's span (when it is traced), and headers that keep
browsers from sniffing, framing, caching or leaking it; never a stack trace: an error nobody expected is
logged with its request id and answered 500 internal_error. CORS is off unless SAGASHOP_CORS_ORIGINS names
origins."""

import logging
import re
import uuid

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sagashop.kit import logs, telemetry
from sagashop.kit.settings import Settings

from .problems import problem

log = logging.getLogger(__name__)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer",
           "cache-control": "no-store"}  # a route may set its own Cache-Control
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
DOCS_POLICY = ("default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
               "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
               "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
               "font-src https://fonts.gstatic.com; connect-src 'self'; worker-src blob:; frame-ancestors 'none'")
CONSOLE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
                  "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGES = {"/docs": DOCS_POLICY, "/redoc": DOCS_POLICY,  # FastAPI's pages: swagger-ui and redoc from jsdelivr
         "/console": CONSOLE_POLICY}  # the saga console: its own script and style from this origin, nothing inline


def request_id(headers: Headers) -> str:
    given = headers.get("x-request-id", "")
    return given if REQUEST_ID.match(given) else uuid.uuid4().hex


class Edge:
    """The outermost ASGI middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(Headers(scope=scope))
        policy = next((page for prefix, page in PAGES.items() if scope["path"].startswith(prefix)), API_POLICY)
        traceparent = telemetry.traceparent()  # of the request's span, when it is traced
        started = False

        async def send_marked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in (*HEADERS.items(), ("content-security-policy", policy)):
                    headers.setdefault(name, value)
                headers["x-request-id"] = rid
                if traceparent:
                    headers["traceparent"] = traceparent
            await send(message)

        token = logs.request_id.set(rid)
        try:
            await self.app(scope, receive, send_marked)
        except Exception:
            log.exception("%s %s failed (request %s)", scope["method"], scope["path"], rid)
            if started:
                raise
            await problem(500, "internal_error", f"the request failed on our side; it was logged as {rid}")(
                scope, receive, send_marked)
        finally:
            logs.request_id.reset(token)


def install(app: FastAPI, settings: Settings) -> None:
    """CORS (when origins are set) inside the Edge: preflights and refusals carry the Edge's headers too."""
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Prefer",
                                          "X-Request-Id"],
                           expose_headers=["Location", "Retry-After", "X-Request-Id"], max_age=600)
    app.add_middleware(Edge)
