import asyncio

import pytest

from sagashop.kit.errors import Compensated, Invalid, NotFound, Rejected
from sagashop.v1 import inventory_pb2 as pb
from sagashop.v1 import inventory_pb2_grpc
from services.inventory.main import SERVICE
from services.inventory.servicer import InventoryServicer
from tests.integration.forms import each_form

pytestmark = each_form


@pytest.fixture
async def inventory(grpc_service, portable_only):
    return await grpc_service("inventory", inventory_pb2_grpc.add_InventoryServiceServicer_to_server,
                              InventoryServicer, inventory_pb2_grpc.InventoryServiceStub, SERVICE,
                              portable_only=portable_only)


async def put(inventory, sku: str, available: int, price: int = 1000) -> pb.Product:
    product = pb.Product(sku=sku, name=sku.title(), price_cents=price, currency="EUR", available=available)
    return await inventory.call(inventory.stub.UpsertProduct, pb.UpsertProductRequest(product=product))


async def stock(inventory, sku: str) -> tuple[int, int, int]:
    p = await inventory.call(inventory.stub.GetProduct, pb.GetProductRequest(sku=sku))
    return p.available, p.reserved, p.sold


def reserve(key: str, **lines: int) -> pb.ReserveStockRequest:
    return pb.ReserveStockRequest(idempotency_key=key, order_id=f"order-{key}",
                                  lines=[{"sku": sku, "quantity": q} for sku, q in lines.items()])


async def test_a_reservation_holds_units_until_committed_or_released(inventory):
    await put(inventory, "LAMP", 5)
    await inventory.call(inventory.stub.ReserveStock, reserve("k1", LAMP=2))
    assert await stock(inventory, "LAMP") == (3, 2, 0)

    await inventory.call(inventory.stub.CommitStock, pb.CommitStockRequest(idempotency_key="k1", order_id="order-k1"))
    assert await stock(inventory, "LAMP") == (3, 0, 2)

    await inventory.call(inventory.stub.ReleaseStock, pb.ReleaseStockRequest(idempotency_key="k1", order_id="o"))
    assert await stock(inventory, "LAMP") == (5, 0, 0)


async def test_a_repeated_reserve_replays_the_first_answer_and_takes_nothing_more(inventory):
    await put(inventory, "LAMP", 5)
    first = await inventory.call(inventory.stub.ReserveStock, reserve("k1", LAMP=2))
    again = await inventory.call(inventory.stub.ReserveStock, reserve("k1", LAMP=2))
    assert (again.idempotency_key, again.state) == (first.idempotency_key, "HELD")
    assert await stock(inventory, "LAMP") == (3, 2, 0)


async def test_a_repeated_commit_replays_the_first_answer_and_moves_nothing_more(inventory):
    await put(inventory, "LAMP", 5)
    await inventory.call(inventory.stub.ReserveStock, reserve("k1", LAMP=2))
    commit = pb.CommitStockRequest(idempotency_key="k1", order_id="order-k1")
    first = await inventory.call(inventory.stub.CommitStock, commit)
    again = await inventory.call(inventory.stub.CommitStock, commit)  # its reply was lost: the saga asks again
    assert (first.state, again.state, list(again.lines)) == ("COMMITTED", "COMMITTED", list(first.lines))
    assert await stock(inventory, "LAMP") == (3, 0, 2)


async def test_a_repeat_gets_its_first_answer_even_when_the_units_are_gone_since(inventory):
    await put(inventory, "LAMP", 2)
    first = await inventory.call(inventory.stub.ReserveStock, reserve("k1", LAMP=2))
    again = await inventory.call(inventory.stub.ReserveStock, reserve("k1", LAMP=2))  # none left for a new one
    assert (again.idempotency_key, again.state, list(again.lines)) == ("k1", "HELD", list(first.lines))
    with pytest.raises(Rejected) as refused:
        await inventory.call(inventory.stub.ReserveStock, reserve("k2", LAMP=2))
    assert (refused.value.code, refused.value.detail) == ("out_of_stock", "LAMP: 0 left, 2 asked")
    assert await stock(inventory, "LAMP") == (0, 2, 0)


async def test_refused_lines_take_nothing_from_the_lines_before_them(inventory):
    await put(inventory, "LAMP", 5)
    await put(inventory, "SOFA", 1)
    with pytest.raises(Rejected) as refused:
        await inventory.call(inventory.stub.ReserveStock, reserve("k1", LAMP=2, SOFA=3))
    assert refused.value.code == "out_of_stock"
    assert await stock(inventory, "LAMP") == (5, 0, 0)

    with pytest.raises(Rejected) as unknown:
        await inventory.call(inventory.stub.ReserveStock, reserve("k2", LAMP=1, NOPE=1))
    assert unknown.value.code == "unknown_product"


async def test_a_release_before_its_reserve_leaves_a_tombstone_that_refuses_the_late_reserve(inventory):
    await put(inventory, "LAMP", 5)
    await inventory.call(inventory.stub.ReleaseStock, pb.ReleaseStockRequest(idempotency_key="k1", order_id="o"))
    with pytest.raises(Compensated):
        await inventory.call(inventory.stub.ReserveStock, reserve("k1", LAMP=2))
    assert await stock(inventory, "LAMP") == (5, 0, 0)


async def test_bad_requests_get_precise_statuses(inventory):
    with pytest.raises(Invalid):
        await inventory.call(inventory.stub.ReserveStock, reserve("k1", LAMP=0))
    with pytest.raises(Invalid):
        await inventory.call(inventory.stub.ReserveStock, reserve("", LAMP=1))
    with pytest.raises(Invalid):
        await put(inventory, "LAMP", -1)
    with pytest.raises(NotFound):
        await stock(inventory, "NOPE")


async def test_concurrent_reservations_never_oversell(inventory):
    await put(inventory, "LAMP", 5)
    outcomes = await asyncio.gather(
        *(inventory.call(inventory.stub.ReserveStock, reserve(f"k{i}", LAMP=1)) for i in range(20)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, pb.Reservation) for o in outcomes) == 5
    assert all(isinstance(o, pb.Reservation) or getattr(o, "code", "") == "out_of_stock" for o in outcomes)
    assert await stock(inventory, "LAMP") == (0, 5, 0)


async def test_commits_releases_and_reserves_of_the_same_products_at_once_all_land_and_conserve_stock(inventory):
    skus = ("AAA", "BBB", "CCC")
    for sku in skus:
        await put(inventory, sku, 1000)
    orders = [dict.fromkeys(skus[::-1] if i % 2 else skus, 1) for i in range(30)]  # lines in either order
    for i, lines in enumerate(orders):
        await inventory.call(inventory.stub.ReserveStock, reserve(f"k{i}", **lines))

    def finish(i: int):  # a third released, the rest committed, while new reservations take units
        if i % 3 == 0:
            return inventory.stub.ReleaseStock, pb.ReleaseStockRequest(idempotency_key=f"k{i}", order_id=f"order-k{i}")
        return inventory.stub.CommitStock, pb.CommitStockRequest(idempotency_key=f"k{i}", order_id=f"order-k{i}")

    calls = [finish(i) for i in range(len(orders))]
    calls += [(inventory.stub.ReserveStock, reserve(f"new{i}", **orders[i])) for i in range(10)]
    answers = await asyncio.gather(*(inventory.call(method, request) for method, request in calls))

    assert [a.state for a in answers] == ["RELEASED" if i % 3 == 0 else "COMMITTED" for i in range(30)] + ["HELD"] * 10
    for sku in skus:  # 30 reserved: 10 released, 20 sold; 10 more held
        assert await stock(inventory, sku) == (1000 - 20 - 10, 10, 20)


async def test_seeding_leaves_an_existing_product_untouched(inventory):
    await put(inventory, "LAMP", 5)
    seed = pb.Product(sku="LAMP", name="Other", price_cents=1, currency="EUR", available=99)
    request = pb.UpsertProductRequest(product=seed, only_if_absent=True)
    kept = await inventory.call(inventory.stub.UpsertProduct, request)
    assert (kept.name, kept.available) == ("Lamp", 5)
