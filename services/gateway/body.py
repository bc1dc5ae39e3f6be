"""What a request body may be: JSON of at most SAGASHOP_MAX_BODY_BYTES. A bigger one is answered 413
payload_too_large, whether it says its length up front (Content-Length) or streams without one; a body of another
media type (or of none) is answered 415 unsupported_media_type."""

import re

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import problem

JSON = re.compile(r"^application/([\w.-]+\+)?json\s*(;|$)", re.IGNORECASE)


class BodyRules:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif (refusal := self.refusal(Headers(scope=scope))) is not None:
            await refusal(scope, receive, send)
        else:
            await self.app(scope, self.limited(receive), send)

    def refusal(self, headers: Headers) -> Response | None:
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return problem(413, "payload_too_large", self.too_large)
        has_body = length not in (None, "0") or "transfer-encoding" in headers
        if has_body and not JSON.match(headers.get("content-type", "")):
            return problem(415, "unsupported_media_type", "a request body is JSON: send Content-Type: application/json")
        return None

    def limited(self, receive: Receive) -> Receive:
        """`receive`, refusing a streamed body once it outgrows the limit (the route's error handlers answer)."""
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.too_large)
            return message

        return receive_limited

    @property
    def too_large(self) -> str:
        return f"a request body is at most {self.max_bytes} bytes"
