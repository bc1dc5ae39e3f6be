import asyncio

import pytest

from sagashop.kit.db import database
from sagashop.kit.errors import Invalid, NotFound, Rejected
from sagashop.v1 import order_pb2 as pb
from sagashop.v1 import order_pb2_grpc
from services.order.main import SERVICE
from services.order.repository import Orders
from services.order.servicer import OrderServicer

HOME = {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"}


@pytest.fixture
async def orders(grpc_service):
    return await grpc_service("order", order_pb2_grpc.add_OrderServiceServicer_to_server,
                              OrderServicer, order_pb2_grpc.OrderServiceStub, SERVICE)


def new(order_id: str, user_id: str = "u1", address: dict = HOME, **lines: tuple[int, int]) -> pb.CreateOrderRequest:
    items = [{"sku": sku, "quantity": q, "unit_price_cents": price} for sku, (q, price) in lines.items()]
    return pb.CreateOrderRequest(id=order_id, user_id=user_id, items=items, currency="EUR", address=address)


async def create(orders, order_id: str, user_id: str = "u1", **lines: tuple[int, int]) -> pb.Order:
    return await orders.call(orders.stub.CreateOrder, new(order_id, user_id, **(lines or {"LAMP": (2, 1500)})))


async def approve(orders, order_id: str) -> pb.Order:
    request = pb.ApproveOrderRequest(id=order_id, tracking_number="TRK-1", charged_cents=3000)
    return await orders.call(orders.stub.ApproveOrder, request)


async def reject(orders, order_id: str, refunded_cents: int = 0) -> pb.Order:
    request = pb.RejectOrderRequest(id=order_id, failure_reason="shipping_rejected", refunded=refunded_cents > 0,
                                    refunded_cents=refunded_cents)
    return await orders.call(orders.stub.RejectOrder, request)


async def cancel(orders, order_id: str) -> pb.Order:
    return await orders.call(orders.stub.CancelOrder, pb.CancelOrderRequest(id=order_id))


async def test_a_created_order_is_pending_and_reads_back_as_created(orders):
    created = await create(orders, "o1", LAMP=(2, 1500), SOFA=(1, 30000))
    got = await orders.call(orders.stub.GetOrder, pb.GetOrderRequest(id="o1"))

    assert got == created
    assert (got.status, got.payment_status, got.total_cents, got.currency) == ("PENDING", "NONE", 33000, "EUR")
    assert [(i.sku, i.quantity, i.unit_price_cents) for i in got.items] == [("LAMP", 2, 1500), ("SOFA", 1, 30000)]
    assert got.address.country == "FR" and got.created_at.endswith("Z")


async def test_a_user_sees_only_their_own_orders_newest_first(orders):
    for order_id in ("o1", "o2", "o3"):
        await create(orders, order_id)
    await create(orders, "other", user_id="u2")

    listed = await orders.call(orders.stub.ListOrders, pb.ListOrdersRequest(user_id="u1"))

    assert [o.id for o in listed.items] == ["o3", "o2", "o1"]


async def test_a_users_orders_come_a_page_at_a_time_each_once_and_a_bad_page_is_refused(orders):
    for order_id in ("o1", "o2", "o3", "o4", "o5"):
        await create(orders, order_id)
    pages, cursor = [], ""
    while True:
        page = await orders.call(orders.stub.ListOrders, pb.ListOrdersRequest(user_id="u1", limit=2, cursor=cursor))
        pages.append([o.id for o in page.items])
        if not (cursor := page.next_cursor):
            break

    assert pages == [["o5", "o4"], ["o3", "o2"], ["o1"]]
    for wrong in ({"cursor": "not-a-cursor"}, {"cursor": "bm8gYmFy"}, {"limit": 101}, {"limit": -1}):
        with pytest.raises(Invalid):
            await orders.call(orders.stub.ListOrders, pb.ListOrdersRequest(user_id="u1", **wrong))


async def test_creating_again_with_the_same_id_returns_the_first_order(orders):
    first = await create(orders, "o1", LAMP=(2, 1500))
    again = await create(orders, "o1", SOFA=(9, 1))

    assert again == first


async def test_concurrent_creates_with_one_id_all_get_the_one_order(orders):
    created = await asyncio.gather(*(create(orders, "o1", LAMP=(i + 1, 100)) for i in range(10)))

    assert all(o == created[0] for o in created)
    listed = await orders.call(orders.stub.ListOrders, pb.ListOrdersRequest(user_id="u1"))
    assert [o.id for o in listed.items] == ["o1"]


async def test_an_approved_order_is_charged_and_shipped_and_approving_again_changes_nothing(orders):
    await create(orders, "o1")
    approved = await approve(orders, "o1")

    assert (approved.status, approved.payment_status, approved.payment_amount_cents) == ("APPROVED", "CHARGED", 3000)
    assert approved.tracking_number == "TRK-1"
    assert await approve(orders, "o1") == approved


async def test_a_rejected_order_tells_why_and_what_was_refunded(orders):
    await create(orders, "o1")
    await create(orders, "o2")

    refunded = await reject(orders, "o1", refunded_cents=3000)
    untouched = await reject(orders, "o2")

    assert (refunded.status, refunded.failure_reason) == ("REJECTED", "shipping_rejected")
    assert (refunded.payment_status, refunded.payment_amount_cents) == ("REFUNDED", 3000)
    assert (untouched.payment_status, untouched.payment_amount_cents) == ("NONE", 0)
    assert await reject(orders, "o1") == refunded


async def test_a_cancelled_order_is_refunded_and_has_no_shipment(orders):
    await create(orders, "o1")
    await approve(orders, "o1")
    cancelled = await cancel(orders, "o1")

    assert (cancelled.status, cancelled.payment_status) == ("CANCELLED", "REFUNDED")
    assert (cancelled.payment_amount_cents, cancelled.tracking_number) == (3000, "")
    assert await cancel(orders, "o1") == cancelled


async def test_moves_out_of_order_are_refused_as_invalid_transitions_and_change_nothing(orders):
    await create(orders, "pending")
    await create(orders, "rejected")
    rejected = await reject(orders, "rejected")

    for refused in (cancel(orders, "pending"), cancel(orders, "rejected"), approve(orders, "rejected")):
        with pytest.raises(Rejected) as error:
            await refused
        assert error.value.code == "invalid_transition"
    assert await orders.call(orders.stub.GetOrder, pb.GetOrderRequest(id="rejected")) == rejected


async def test_an_approve_racing_a_reject_settles_the_order_once(orders):
    await create(orders, "o1")

    outcomes = await asyncio.gather(approve(orders, "o1"), reject(orders, "o1"), return_exceptions=True)

    settled = [o for o in outcomes if isinstance(o, pb.Order)]
    assert len(settled) == 1
    assert [getattr(o, "code", "") for o in outcomes if not isinstance(o, pb.Order)] == ["invalid_transition"]
    assert await orders.call(orders.stub.GetOrder, pb.GetOrderRequest(id="o1")) == settled[0]


async def test_a_move_is_saved_only_onto_the_status_it_was_decided_from(settings):
    db = await database(settings, "order")
    try:
        await OrderServicer(db).CreateOrder(new("o1", LAMP=(1, 1500)), None)

        def race(conn):
            orders = Orders(conn)
            read = orders.get("o1")  # PENDING: two moves decided on it, the reject saved first
            rejected = orders.save(read.reject("payment_declined", False, 0), was=read.status)
            approved = orders.save(read.approve("SS1", 1500), was=read.status)
            return rejected, approved, orders.get("o1")

        rejected, approved, now = await db.autocommit(race)
    finally:
        await db.dispose()
    assert approved is None and rejected is not None
    assert (now.status, now.failure_reason, now.tracking_number) == ("REJECTED", "payment_declined", "")


@pytest.mark.parametrize("malformed", [
    new("o1"),
    new("o1", **{f"SKU-{i}": (1, 100) for i in range(51)}),
    new("o1", LAMP=(0, 1500)),
    new("o1", LAMP=(1, -1)),
    new("o1", address={**HOME, "country": "France"}, LAMP=(1, 1500)),
    new("", LAMP=(1, 1500)),
], ids=["no_lines", "51_lines", "quantity_0", "negative_price", "bad_country", "no_id"])
async def test_a_malformed_order_is_invalid_and_not_created(orders, malformed):
    with pytest.raises(Invalid):
        await orders.call(orders.stub.CreateOrder, malformed)
    listed = await orders.call(orders.stub.ListOrders, pb.ListOrdersRequest(user_id="u1"))
    assert list(listed.items) == []


async def test_an_unknown_order_is_not_found(orders):
    with pytest.raises(NotFound):
        await orders.call(orders.stub.GetOrder, pb.GetOrderRequest(id="nope"))
    with pytest.raises(NotFound):
        await approve(orders, "nope")
