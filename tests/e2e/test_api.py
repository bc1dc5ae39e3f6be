"""The REST contract's answers: accounts, catalog, orders' visibility and every refusal as problem+json."""

import uuid

import pytest

PROBLEM = "application/problem+json"


def assert_problem(reply, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM)
    body = reply.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["title"] and body["type"] and body["detail"]


def test_a_new_user_can_log_in_and_see_who_they_are(shop):
    user = shop.customer()
    me = shop.http.get("/v1/users/me", headers=user).json()
    assert me["roles"] == ["customer"] and me["email"].endswith("@example.com")
    assert "admin" in shop.http.get("/v1/users/me", headers=shop.admin).json()["roles"]


def test_an_address_signs_in_in_any_of_its_forms_and_is_taken_in_all_of_them(shop):
    tag = uuid.uuid4().hex[:8]
    body = {"email": f"Ada.{tag}@EXÄMPLE.com", "password": "password-1", "name": "Ada"}
    created = shop.http.post("/v1/users", json=body)
    assert (created.status_code, created.json()["email"]) == (201, f"ada.{tag}@exämple.com")
    for form in (f"ada.{tag}@exämple.com", f" ADA.{tag}@xn--exmple-cua.com ", f"ada.{tag}@exa\u0308mple.com"):
        signed_in = shop.http.post("/v1/auth/token", json={"email": form, "password": "password-1"})
        assert signed_in.status_code == 200, form
        taken = shop.http.post("/v1/users", json={**body, "email": form})
        assert_problem(taken, 409, "email_taken")


def test_account_refusals(shop):
    body = {"email": "dup@example.com", "password": "password-1", "name": "Dup"}
    shop.http.post("/v1/users", json=body)
    assert_problem(shop.http.post("/v1/users", json=body), 409, "email_taken")
    for wrong in ("not-an-email", "Dup <dup2@example.com>"):  # a display name is not part of an address
        assert_problem(shop.http.post("/v1/users", json={**body, "email": wrong}), 422, "validation_error")
    assert_problem(shop.http.post("/v1/users", json={**body, "password": "short"}), 422, "validation_error")
    assert_problem(shop.http.post("/v1/users", json={**body, "name": ""}), 422, "validation_error")
    wrong = {"email": "dup@example.com", "password": "wrong-password"}
    assert_problem(shop.http.post("/v1/auth/token", json=wrong), 401, "invalid_credentials")
    assert_problem(shop.http.get("/v1/users/me"), 401, "unauthorized")
    assert_problem(shop.http.get("/v1/users/me", headers={"Authorization": "Bearer nonsense"}), 401, "unauthorized")


def test_the_catalog_is_public_and_only_admins_change_it(shop):
    sku = shop.product(stock=7, price_cents=990)
    assert shop.http.get(f"/v1/products/{sku}").json() == {
        "sku": sku, "name": f"Test {sku}", "price_cents": 990, "currency": "EUR", "available": 7}
    assert sku in [p["sku"] for p in shop.http.get("/v1/products").json()["items"]]
    assert "LAMP" in [p["sku"] for p in shop.http.get("/v1/products").json()["items"]]  # the seeded demo catalog
    assert_problem(shop.http.get("/v1/products/NOPE-404"), 404, "not_found")
    body = {"name": "X", "price_cents": 1, "currency": "EUR", "available": 1}
    assert_problem(shop.http.put(f"/v1/admin/products/{sku}", json=body, headers=shop.customer()), 403, "forbidden")
    for wrong in ({"available": -1}, {"price_cents": 0}):  # nothing is given away
        assert_problem(shop.http.put(f"/v1/admin/products/{sku}", json={**body, **wrong}, headers=shop.admin),
                       422, "validation_error")


@pytest.mark.parametrize("change", [
    {"items": []},
    {"items": [{"sku": "LAMP", "quantity": 1}] * 51},
    {"items": [{"sku": "LAMP", "quantity": 0}]},
    {"items": [{"sku": "LAMP", "quantity": "2"}]},
    {"items": [{"sku": "LAMP", "quantity": 1, "color": "red"}]},
    {"payment_token": None},
    {"shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "1", "country": "FRA"}},
    {"shipping_address": {"name": "Ada", "city": "Paris", "postal_code": "75001", "country": "FR"}},
])
def test_an_invalid_order_is_refused_with_a_validation_problem(shop, change):
    body = {**shop.order_body({"LAMP": 1}), **change}
    assert_problem(shop.http.post("/v1/orders", json=body, headers=shop.customer()), 422, "validation_error")


def test_an_order_is_visible_to_its_owner_and_admins_only(shop):
    owner, stranger = shop.customer(), shop.customer()
    order = shop.place_order({shop.product(stock=3): 1}, user=owner)

    assert shop.http.get(f"/v1/orders/{order['id']}", headers=owner).json()["id"] == order["id"]
    assert shop.http.get(f"/v1/orders/{order['id']}", headers=shop.admin).status_code == 200
    assert_problem(shop.http.get(f"/v1/orders/{order['id']}", headers=stranger), 404, "not_found")
    assert_problem(shop.http.get(f"/v1/orders/{order['id']}/saga", headers=stranger), 404, "not_found")
    assert_problem(shop.http.get(f"/v1/admin/orders/{order['id']}/payments", headers=owner), 403, "forbidden")
    assert [o["id"] for o in shop.http.get("/v1/orders", headers=owner).json()["items"]] == [order["id"]]
    assert shop.http.get("/v1/orders", headers=stranger).json()["items"] == []


def test_a_users_orders_are_listed_newest_first_a_page_at_a_time(shop):
    user = shop.customer()
    sku = shop.product(stock=5)
    placed = [shop.place_order({sku: 1}, user=user)["id"] for _ in range(3)]
    everything = shop.http.get("/v1/orders", headers=user).json()  # as a client that knows no paging asks
    assert ([o["id"] for o in everything["items"]], everything["next_cursor"]) == (placed[::-1], None)

    first = shop.http.get("/v1/orders", params={"limit": 2}, headers=user).json()
    rest = shop.http.get("/v1/orders", params={"limit": 2, "cursor": first["next_cursor"]}, headers=user).json()
    assert [o["id"] for o in first["items"] + rest["items"]] == placed[::-1] and rest["next_cursor"] is None
    for wrong in ({"limit": 0}, {"limit": 101}, {"cursor": "a b"}, {"cursor": "bm8gYmFy"}):
        assert_problem(shop.http.get("/v1/orders", params=wrong, headers=user), 422, "validation_error")


def test_operations_endpoints_answer(shop):
    assert shop.http.get("/healthz").status_code == 200
    assert shop.http.get("/readyz").status_code == 200
    assert "python_info" in shop.http.get("/metrics").text
    assert shop.http.get("/docs").status_code == 200
    assert "/v1/orders" in shop.http.get("/openapi.json").json()["paths"]
    assert_problem(shop.http.get("/v1/no-such-route"), 404, "not_found")
