"""The benchmark's set-up requests (the shop's client): a rate-limited one waits as told and tries again, a bounded
number of times; an error is reported with what the shop said. A checkout answered with no JSON counts as its HTTP
status."""

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tools import bench
from tools.local.parts import free_port
from tools.shopclient import RATE_LIMITED_WAITS, ShopClient, ShopError


@pytest.fixture
async def shop() -> AsyncIterator[tuple[aiohttp.ClientSession, ShopClient, dict[str, int]]]:
    """A stand-in gateway on loopback: /busy/N answers 429 (Retry-After: 0) N times, then 200; /refused 400;
    /v1/orders 502 with a page of text, as a proxy in front of a stopped gateway does."""
    asked: dict[str, int] = {}

    async def busy(request: web.Request) -> web.Response:
        path = request.path
        asked[path] = asked.get(path, 0) + 1
        if asked[path] <= int(request.match_info["times"]):
            return web.json_response({"code": "rate_limited"}, status=429, headers={"Retry-After": "0"})
        return web.json_response({"id": "o1"})

    async def refused(request: web.Request) -> web.Response:
        return web.json_response({"code": "invalid", "detail": "no such admin"}, status=400)

    async def proxy_error(request: web.Request) -> web.Response:
        return web.Response(text="<html>502 Bad Gateway</html>", status=502, content_type="text/html")

    app = web.Application()
    app.router.add_get("/busy/{times}", busy)
    app.router.add_post("/refused", refused)
    app.router.add_post("/v1/orders", proxy_error)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http, ShopClient(f"http://127.0.0.1:{port}") as c:
        yield http, c, asked
    await runner.cleanup()


async def test_a_rate_limited_request_waits_as_told_and_gets_its_answer(shop):
    _, client, asked = shop
    assert await client.call("GET", "/busy/3") == {"id": "o1"}
    assert asked["/busy/3"] == 4


async def test_a_request_limited_past_the_waits_allowed_is_an_error_not_a_hang(shop):
    _, client, asked = shop
    with pytest.raises(ShopError, match="answered 429") as refused:
        await client.call("GET", "/busy/1000")
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert asked["/busy/1000"] == RATE_LIMITED_WAITS + 1


async def test_an_error_says_what_the_shop_answered(shop):
    _, client, _ = shop
    with pytest.raises(ShopError, match=r"POST /refused answered 400: .*no such admin") as refused:
        await client.call("POST", "/refused", json={})
    assert (refused.value.status, refused.value.code, refused.value.detail) == (400, "invalid", "no such admin")


async def test_a_checkout_answered_without_json_is_counted_by_its_status(shop):
    http, _, _ = shop
    place = bench.via_gateway(http, "SKU-1")
    assert await place({"headers": {}}) == ("HTTP 502", "")
