"""Hostile inputs to every gRPC service over a real channel, on SQLite and PostgreSQL: each gets the status that
says what is wrong with it (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ...), never INTERNAL or UNKNOWN.
Every case has keys and ids of its own, so none replays another."""

import uuid
from typing import Any

import grpc
import pytest

from sagashop.kit.grpcclient import Dependency
from sagashop.v1 import (
    inventory_pb2,
    inventory_pb2_grpc,
    order_pb2,
    order_pb2_grpc,
    payment_pb2,
    payment_pb2_grpc,
    shipping_pb2,
    shipping_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from services.inventory.main import SERVICE as INVENTORY
from services.inventory.servicer import InventoryServicer
from services.order.main import SERVICE as ORDER
from services.order.servicer import OrderServicer
from services.payment.main import SERVICE as PAYMENT
from services.payment.servicer import PaymentServicer
from services.shipping.main import SERVICE as SHIPPING
from services.shipping.servicer import ShippingServicer
from services.user.main import SERVICE as USER
from services.user.servicer import UserServicer
from tests.integration.conftest import SECRET

S = grpc.StatusCode
OK, INVALID, MISSING, REFUSED, UNAUTHENTICATED = (S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.FAILED_PRECONDITION,
                                                  S.UNAUTHENTICATED)
HUGE, NUL, INT32_MAX, INT64_MAX = "x" * 100_000, "a\x00b", 2**31 - 1, 2**63 - 1
HOME = {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"}

user, order, inventory, payment, shipping = user_pb2, order_pb2, inventory_pb2, payment_pb2, shipping_pb2


def fresh() -> str:
    return uuid.uuid4().hex


def product(**change: Any) -> inventory_pb2.UpsertProductRequest:
    return inventory.UpsertProductRequest(product={"sku": f"P-{fresh()}", "name": "Lamp", "price_cents": 100,
                                                   "currency": "EUR", "available": 5, **change})


def new_order(**change: Any) -> order_pb2.CreateOrderRequest:
    return order.CreateOrderRequest(**{"id": fresh(), "user_id": "u1", "currency": "EUR", "address": HOME,
                                       "items": [{"sku": "LAMP", "quantity": 1, "unit_price_cents": 100}], **change})


def reserve(key: str | None = None, **lines: int) -> inventory_pb2.ReserveStockRequest:
    lines = lines or {"LAMP": 1}
    return inventory.ReserveStockRequest(idempotency_key=fresh() if key is None else key, order_id="o1",
                                         lines=[{"sku": sku, "quantity": q} for sku, q in lines.items()])


def charge(**change: Any) -> payment_pb2.ChargeRequest:
    return payment.ChargeRequest(**{"idempotency_key": fresh(), "order_id": "o1", "amount_cents": 100,
                                    "currency": "EUR", "payment_token": "tok_ok", **change})


def ship(**change: Any) -> shipping_pb2.CreateShipmentRequest:
    return shipping.CreateShipmentRequest(**{"idempotency_key": fresh(), "order_id": "o1", "address": HOME,
                                             "lines": [{"sku": "LAMP", "quantity": 1}], **change})


CASES: dict[str, list[tuple[str, Any, grpc.StatusCode]]] = {
    "user": [
        ("CreateUser", user.CreateUserRequest(email="", password="password-1", name="Ada"), INVALID),
        ("CreateUser", user.CreateUserRequest(email=HUGE + "@example.com", password="password-1", name="A"), INVALID),
        ("CreateUser", user.CreateUserRequest(email="a@example.com", password=HUGE, name="Ada"), INVALID),
        ("CreateUser", user.CreateUserRequest(email="a@example.com", password="password-1", name=HUGE), INVALID),
        ("CreateUser", user.CreateUserRequest(email="a@example.com", password="password-1", name=NUL), INVALID),
        ("Authenticate", user.AuthenticateRequest(email="", password=""), UNAUTHENTICATED),
        ("Authenticate", user.AuthenticateRequest(email=HUGE, password=HUGE), UNAUTHENTICATED),
        ("Authenticate", user.AuthenticateRequest(email=NUL, password="password-1"), UNAUTHENTICATED),
        ("GetUser", user.GetUserRequest(id=""), INVALID),
        ("GetUser", user.GetUserRequest(id=HUGE), INVALID),
        ("GetUser", user.GetUserRequest(id=NUL), INVALID),
        ("GetUser", user.GetUserRequest(id="nobody"), MISSING),
    ],
    "order": [
        ("CreateOrder", new_order(id=""), INVALID),
        ("CreateOrder", new_order(id=HUGE), INVALID),
        ("CreateOrder", new_order(user_id=NUL), INVALID),
        ("CreateOrder", new_order(items=[]), INVALID),
        ("CreateOrder", new_order(items=[{"sku": "LAMP", "quantity": -1, "unit_price_cents": 100}]), INVALID),
        ("CreateOrder", new_order(items=[{"sku": "LAMP", "quantity": INT32_MAX, "unit_price_cents": 1}]), INVALID),
        ("CreateOrder", new_order(items=[{"sku": "LAMP", "quantity": 1, "unit_price_cents": INT64_MAX}]), INVALID),
        ("CreateOrder", new_order(items=[{"sku": "", "quantity": 1, "unit_price_cents": 1}]), INVALID),
        ("CreateOrder", new_order(currency="euro"), INVALID),
        ("CreateOrder", new_order(address={**HOME, "city": HUGE}), INVALID),
        ("CreateOrder", new_order(address={**HOME, "country": "FRA"}), INVALID),
        ("GetOrder", order.GetOrderRequest(id=""), INVALID),
        ("GetOrder", order.GetOrderRequest(id=HUGE), INVALID),
        ("GetOrder", order.GetOrderRequest(id=NUL), INVALID),
        ("GetOrder", order.GetOrderRequest(id="nope"), MISSING),
        ("ListOrders", order.ListOrdersRequest(user_id=NUL), INVALID),
        ("ApproveOrder", order.ApproveOrderRequest(id="nope", tracking_number="T", charged_cents=1), MISSING),
        ("RejectOrder", order.RejectOrderRequest(id="nope", failure_reason=""), MISSING),
        ("CancelOrder", order.CancelOrderRequest(id=""), INVALID),
    ],
    "inventory": [
        ("UpsertProduct", product(sku=""), INVALID),
        ("UpsertProduct", product(sku=NUL), INVALID),
        ("UpsertProduct", product(name=HUGE), INVALID),
        ("UpsertProduct", product(name=NUL), INVALID),
        ("UpsertProduct", product(available=-1), INVALID),
        ("UpsertProduct", product(price_cents=INT64_MAX), INVALID),
        ("UpsertProduct", product(price_cents=0), INVALID),
        ("GetProduct", inventory.GetProductRequest(sku=""), INVALID),
        ("GetProduct", inventory.GetProductRequest(sku=NUL), INVALID),
        ("GetProduct", inventory.GetProductRequest(sku="NO-SUCH-SKU"), MISSING),
        ("ListProducts", inventory.ListProductsRequest(skus=["NO-SUCH-SKU", ""]), INVALID),
        ("ListProducts", inventory.ListProductsRequest(skus=[f"S{i}" for i in range(40_000)]), INVALID),
        ("ReserveStock", reserve(key=""), INVALID),
        ("ReserveStock", reserve(key=HUGE), INVALID),
        ("ReserveStock", reserve(LAMP=-5), INVALID),
        ("ReserveStock", reserve(LAMP=INT32_MAX), INVALID),
        ("ReserveStock", reserve(**{"NO-SUCH-SKU": 1}), REFUSED),
        ("ReleaseStock", inventory.ReleaseStockRequest(idempotency_key="", order_id="o1"), INVALID),
        ("CommitStock", inventory.CommitStockRequest(idempotency_key="never-reserved", order_id="o1"), MISSING),
    ],
    "payment": [
        ("Charge", charge(idempotency_key=""), INVALID),
        ("Charge", charge(order_id=HUGE), INVALID),
        ("Charge", charge(amount_cents=-100), INVALID),
        ("Charge", charge(amount_cents=INT64_MAX), INVALID),
        ("Charge", charge(currency=""), INVALID),
        ("Charge", charge(payment_token=HUGE), REFUSED),
        ("Charge", charge(payment_token=NUL), REFUSED),
        ("Refund", payment.RefundRequest(idempotency_key="", order_id="o1"), INVALID),
        ("ListLedger", payment.ListLedgerRequest(order_id=""), INVALID),
        ("ListLedger", payment.ListLedgerRequest(order_id=NUL), INVALID),
    ],
    "shipping": [
        ("CreateShipment", ship(idempotency_key=""), INVALID),
        ("CreateShipment", ship(lines=[]), INVALID),
        ("CreateShipment", ship(lines=[{"sku": "LAMP", "quantity": -1}]), INVALID),
        ("CreateShipment", ship(address={**HOME, "country": ""}), INVALID),
        ("CreateShipment", ship(address={**HOME, "name": HUGE}), INVALID),
        ("CreateShipment", ship(address={**HOME, "country": "AQ"}), REFUSED),
        ("CancelShipment", shipping.CancelShipmentRequest(idempotency_key="", order_id="o1"), INVALID),
        ("ListShipments", shipping.ListShipmentsRequest(order_id=""), INVALID),
        ("ListShipments", shipping.ListShipmentsRequest(order_id=NUL), INVALID),
    ],
}
SERVERS = {
    "user": (user_pb2_grpc.add_UserServiceServicer_to_server, UserServicer, user_pb2_grpc.UserServiceStub, USER),
    "order": (order_pb2_grpc.add_OrderServiceServicer_to_server, OrderServicer, order_pb2_grpc.OrderServiceStub, ORDER),
    "inventory": (inventory_pb2_grpc.add_InventoryServiceServicer_to_server, InventoryServicer,
                  inventory_pb2_grpc.InventoryServiceStub, INVENTORY),
    "payment": (payment_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentServicer,
                payment_pb2_grpc.PaymentServiceStub, PAYMENT),
    "shipping": (shipping_pb2_grpc.add_ShippingServiceServicer_to_server, ShippingServicer,
                 shipping_pb2_grpc.ShippingServiceStub, SHIPPING),
}


async def status_of(client: Any, rpc: str, request: Any) -> grpc.StatusCode:
    try:
        await getattr(client.stub, rpc)(request, timeout=30, metadata=client.metadata)  # signed as a part's call
    except grpc.aio.AioRpcError as e:
        return e.code()
    return OK


@pytest.mark.parametrize("service", list(CASES))
async def test_each_bad_input_gets_the_status_that_names_what_is_wrong(grpc_service, service):
    client = await grpc_service(service, *SERVERS[service])
    got = [(rpc, request, await status_of(client, rpc, request)) for rpc, request, _ in CASES[service]]
    wrong = [f"{rpc}({str(request)[:120]!r}): {status.name}, not {expected.name}"
             for (rpc, request, status), (*_, expected) in zip(got, CASES[service], strict=True) if status != expected]
    assert not wrong, "\n".join(wrong)


async def test_a_message_over_the_4_mib_limit_is_refused_as_too_big(grpc_service):
    client = await grpc_service("user", *SERVERS["user"])
    request = user.CreateUserRequest(email="a@example.com", password="password-1", name="x" * (5 * 2**20))
    assert await status_of(client, "CreateUser", request) == S.RESOURCE_EXHAUSTED


async def test_a_health_probe_of_a_pinned_version_counts_only_that_version_s_answer(grpc_service) -> None:
    """A probe of payment's v2 that reaches a v1 (no mesh, no address of a v2's own) is not an answer of v2's: the
    orchestrator would otherwise pin sagas to a v2 that v1 serves."""
    v1 = await grpc_service("payment", payment_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentServicer,
                            payment_pb2_grpc.PaymentServiceStub, PAYMENT)
    as_v2 = Dependency("payment", v1.address, payment_pb2_grpc.PaymentServiceStub, caller="test", secret=SECRET,
                       route="v2")
    try:
        assert await v1.is_serving() is True
        assert await as_v2.is_serving() is False
    finally:
        await as_v2.close()
