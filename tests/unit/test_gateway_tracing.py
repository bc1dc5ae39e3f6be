"""The gateway's request span when nothing records spans: only its ids, continuing the caller's trace, seen by the
route (and so by every gRPC call it makes) and named in the response."""

from typing import Any

import pytest
from opentelemetry import trace

from sagashop.kit import telemetry
from services.gateway.observe import TraceContext
from services.gateway.security import Edge

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def answer(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[dict[str, str], str | None]:
    """The response headers of a request through the gateway's outer middleware, and the traceparent the route
    saw (what its outgoing calls carry)."""
    seen: list[str | None] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        seen.append(telemetry.traceparent())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": b""}
    await TraceContext(Edge(route))(scope, receive, send)
    return {k.decode(): v.decode() for k, v in sent[0]["headers"]}, seen[0]


@pytest.fixture
def unrecorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_recording", False)  # nothing exports spans


async def test_a_request_continues_the_callers_trace_under_a_span_id_of_its_own(unrecorded):
    headers, seen = await answer("/v1/products", [(b"traceparent", CALLER.encode())])

    answered = telemetry.span_context(headers["traceparent"])
    assert answered is not None and f"{answered.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert answered.span_id != 0xB7AD6B7169203331
    assert seen == headers["traceparent"]  # the route's calls carry the request's span
    assert not trace.get_current_span().get_span_context().is_valid  # the span ended with the request


async def test_a_request_without_a_traceparent_starts_a_trace_and_probes_start_none(unrecorded):
    first, _ = await answer("/v1/products", [])
    second, _ = await answer("/v1/products", [])
    probe, seen = await answer("/healthz", [])

    ids = [telemetry.span_context(h["traceparent"]) for h in (first, second)]
    assert all(i is not None for i in ids) and ids[0].trace_id != ids[1].trace_id  # type: ignore[union-attr]
    assert "traceparent" not in probe and seen is None
