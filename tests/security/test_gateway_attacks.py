"""What held when the shop was tried as an attacker would, kept as regressions: tokens the shop did not issue,
other users' orders and sagas, admin routes, idempotency keys across users, and hostile bodies."""

import base64
import json
import time
import uuid

import jwt

from tests.shop import Shop

PROBLEM = "application/problem+json"


def problem_code(reply) -> tuple[int, str]:
    assert reply.headers["content-type"].startswith(PROBLEM), reply.text
    return reply.status_code, reply.json()["code"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unsigned(claims: dict[str, object]) -> str:
    """A token with `alg: none`: a header and claims, and no signature."""
    part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_tokens_the_shop_did_not_issue_are_refused(shop: Shop):
    me = shop.http.get("/v1/users/me", headers=shop.admin).json()["id"]
    now = int(time.time())
    claims = {"iss": "sagashop", "aud": "sagashop-api", "sub": me, "roles": ["admin"], "iat": now, "exp": now + 600}
    forged = [unsigned(claims), jwt.encode(claims, "a-guess-at-the-secret-" + "x" * 20, algorithm="HS256"),
              jwt.encode({**claims, "exp": now - 10}, shop.env["SAGASHOP_JWT_SECRET"], algorithm="HS256"),
              jwt.encode({**claims, "aud": "someone-else"}, shop.env["SAGASHOP_JWT_SECRET"], algorithm="HS256")]
    for token in forged:
        assert problem_code(shop.http.get("/v1/admin/sagas", headers=bearer(token))) == (401, "unauthorized")


def test_another_users_order_its_saga_and_its_events_are_not_found_and_admin_routes_are_forbidden(shop: Shop):
    owner, stranger = shop.customer(), shop.customer()
    order = shop.place_order({shop.product(stock=1): 1}, user=owner)
    for path in (f"/v1/orders/{order['id']}", f"/v1/orders/{order['id']}/saga",
                 f"/v1/orders/{order['id']}/saga/events"):
        assert problem_code(shop.http.get(path, headers=stranger)) == (404, "not_found"), path
    assert problem_code(shop.http.post(f"/v1/orders/{order['id']}/cancel", headers=stranger)) == (404, "not_found")
    for method, path in (("GET", "/v1/admin/sagas"), ("GET", f"/v1/admin/orders/{order['id']}/payments"),
                         ("PUT", "/v1/admin/products/X-1"), ("GET", "/v1/admin/breakers")):
        assert problem_code(shop.http.request(method, path, headers=owner, json={})) == (403, "forbidden"), path


def test_an_idempotency_key_is_each_users_own_and_a_different_body_is_a_conflict(shop: Shop):
    sku, key = shop.product(stock=5), uuid.uuid4().hex
    ada, bob = shop.customer(), shop.customer()
    first = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}), headers={**ada, "Idempotency-Key": key})
    others = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}), headers={**bob, "Idempotency-Key": key})
    assert (first.status_code, others.status_code) == (201, 201) and first.json()["id"] != others.json()["id"]
    changed = shop.http.post("/v1/orders", json=shop.order_body({sku: 2}), headers={**ada, "Idempotency-Key": key})
    assert problem_code(changed) == (409, "idempotency_conflict")
    assert shop.stock(sku) == (3, 0, 2)


def test_hostile_bodies_are_refused_as_problems_and_store_nothing(shop: Shop):
    user, sku = shop.customer(), shop.product(stock=5)
    nested = '{"x":' * 2_000 + "{}" + "}" * 2_000  # deeper than any parser's recursion should go
    hostile = [{**shop.order_body({sku: 1}), "items": [{"sku": sku, "quantity": 10**40}]},
               {**shop.order_body({sku: 1}), "payment_token": "tok_ok\u0000"},
               {**shop.order_body({sku: 1}), "items": [{"sku": "A" * 10_000, "quantity": 1}]},
               [shop.order_body({sku: 1})] * 3, "just a string"]
    for body in [nested, *(json.dumps(b) for b in hostile)]:
        status, _ = problem_code(shop.http.post("/v1/orders", content=body, headers={
            **user, "Content-Type": "application/json"}))
        assert 400 <= status < 500
    assert shop.http.get("/v1/orders", headers=user).json()["items"] == []
    assert shop.stock(sku) == (5, 0, 0)
