import asyncio
import logging
import shutil
from datetime import timedelta

import pytest

from sagashop.kit.clock import now
from sagashop.kit.db import Database, database
from sagashop.kit.errors import Compensated, DomainError
from sagashop.kit.settings import Settings
from sagashop.v1 import inventory_pb2 as pb
from sagashop.v1 import inventory_pb2_grpc
from services.inventory.main import SERVICE
from services.inventory.repository import Inventory, reservations
from services.inventory.servicer import InventoryServicer
from services.inventory.sweeper import Sweeper
from tests.integration.forms import each_form


@pytest.fixture
def portable_only() -> bool:
    """The one-statement forms where there are some; a test marked `each_form` (commits) runs both."""
    return False


@pytest.fixture
async def inventory(grpc_service, portable_only):
    return await grpc_service("inventory", inventory_pb2_grpc.add_InventoryServiceServicer_to_server,
                              InventoryServicer, inventory_pb2_grpc.InventoryServiceStub, SERVICE,
                              portable_only=portable_only)


@pytest.fixture
async def db(settings, inventory):
    """The inventory database as another replica sees it: connections of its own."""
    other = await database(settings, "inventory")
    yield other
    await other.dispose()


async def put(inventory, sku: str, available: int) -> None:
    product = pb.Product(sku=sku, name=sku.title(), price_cents=1000, currency="EUR", available=available)
    await inventory.call(inventory.stub.UpsertProduct, pb.UpsertProductRequest(product=product))


async def stock(inventory, sku: str) -> tuple[int, int, int]:
    p = await inventory.call(inventory.stub.GetProduct, pb.GetProductRequest(sku=sku))
    return p.available, p.reserved, p.sold


async def reserve(inventory, key: str, **lines: int) -> pb.Reservation:
    request = pb.ReserveStockRequest(idempotency_key=key, order_id=f"order-{key}",
                                     lines=[{"sku": sku, "quantity": q} for sku, q in lines.items()])
    return await inventory.call(inventory.stub.ReserveStock, request)


async def commit(inventory, key: str) -> pb.Reservation:
    request = pb.CommitStockRequest(idempotency_key=key, order_id=f"order-{key}")
    return await inventory.call(inventory.stub.CommitStock, request)


async def release(inventory, key: str) -> pb.Reservation:
    request = pb.ReleaseStockRequest(idempotency_key=key, order_id=f"order-{key}")
    return await inventory.call(inventory.stub.ReleaseStock, request)


async def state(db, key: str) -> str:
    return (await db.autocommit(lambda conn: Inventory(conn).reservation(key))).state  # type: ignore[union-attr]


async def made_ago(db, key: str, seconds: float) -> None:
    await db.transaction(lambda conn: conn.execute(reservations.update().where(reservations.c.idempotency_key == key)
                                                   .values(created_at=now() - timedelta(seconds=seconds))))


async def test_a_reservation_held_past_the_ttl_is_released_and_a_younger_one_is_kept(inventory, db):
    await put(inventory, "LAMP", 5)
    await reserve(inventory, "old", LAMP=2)
    await reserve(inventory, "young", LAMP=1)
    await made_ago(db, "old", 901)
    await made_ago(db, "young", 899)

    assert await Sweeper(db, ttl_seconds=900).sweep() == 1
    assert (await state(db, "old"), await state(db, "young")) == ("EXPIRED", "HELD")
    assert await stock(inventory, "LAMP") == (4, 1, 0)


@each_form
async def test_a_committed_reservation_is_never_touched_by_a_sweep(inventory, db):
    await put(inventory, "LAMP", 5)
    await reserve(inventory, "k1", LAMP=2)
    await commit(inventory, "k1")

    assert await Sweeper(db, ttl_seconds=0).sweep() == 0
    assert await state(db, "k1") == "COMMITTED"
    assert await stock(inventory, "LAMP") == (3, 0, 2)


@each_form
async def test_a_late_commit_of_an_expired_reservation_takes_its_units_again_while_they_are_there(inventory, db):
    await put(inventory, "LAMP", 5)
    await reserve(inventory, "k1", LAMP=2)
    assert await Sweeper(db, ttl_seconds=0).sweep() == 1
    assert await stock(inventory, "LAMP") == (5, 0, 0)

    assert (await commit(inventory, "k1")).state == "COMMITTED"
    assert (await commit(inventory, "k1")).state == "COMMITTED"  # a repeat replays it
    assert await stock(inventory, "LAMP") == (3, 0, 2)
    assert await Sweeper(db, ttl_seconds=0).sweep() == 0


@each_form
async def test_a_retried_reserve_of_an_expired_reservation_holds_its_units_again_for_another_ttl(inventory, db):
    await put(inventory, "LAMP", 5)
    await reserve(inventory, "k1", LAMP=2)
    await made_ago(db, "k1", 901)
    assert await Sweeper(db, ttl_seconds=900).sweep() == 1

    assert (await reserve(inventory, "k1", LAMP=2)).state == "HELD"
    assert (await reserve(inventory, "k1", LAMP=2)).state == "HELD"  # a repeat replays it
    assert await stock(inventory, "LAMP") == (3, 2, 0)
    assert await Sweeper(db, ttl_seconds=900).sweep() == 0  # held anew


@each_form
async def test_a_late_commit_whose_units_were_sold_meanwhile_is_refused_out_of_stock_and_takes_nothing(inventory, db):
    await put(inventory, "LAMP", 5)
    await put(inventory, "BULB", 5)
    await reserve(inventory, "k1", LAMP=2, BULB=3)
    assert await Sweeper(db, ttl_seconds=0).sweep() == 1
    await reserve(inventory, "k2", BULB=4)  # someone else's order takes the bulbs back on sale

    for late in (commit(inventory, "k1"), reserve(inventory, "k1", LAMP=2, BULB=3)):
        with pytest.raises(DomainError) as refused:
            await late
        assert refused.value.code == "out_of_stock"
    assert (await stock(inventory, "LAMP"), await stock(inventory, "BULB")) == ((5, 0, 0), (1, 4, 0))
    assert await state(db, "k1") == "EXPIRED"


@each_form
async def test_a_release_of_an_expired_reservation_refuses_any_late_commit_or_reserve(inventory, db):
    await put(inventory, "LAMP", 5)
    await reserve(inventory, "k1", LAMP=2)
    assert await Sweeper(db, ttl_seconds=0).sweep() == 1

    assert (await release(inventory, "k1")).state == "RELEASED"
    assert (await release(inventory, "k1")).state == "RELEASED"
    with pytest.raises(Compensated):
        await commit(inventory, "k1")
    with pytest.raises(Compensated):
        await reserve(inventory, "k1", LAMP=2)
    assert await stock(inventory, "LAMP") == (5, 0, 0)


async def test_a_second_sweep_releases_nothing_more(inventory, db):
    await put(inventory, "LAMP", 5)
    await reserve(inventory, "k1", LAMP=2)
    sweeper = Sweeper(db, ttl_seconds=0)
    assert [await sweeper.sweep(), await sweeper.sweep()] == [1, 0]
    assert await stock(inventory, "LAMP") == (5, 0, 0)


async def race(inventory, replicas, keys: list[str]) -> dict[str, object]:
    """Two replicas sweep (oldest first) while the saga commits (newest first): they meet in the middle. The
    commits' outcomes."""
    sweeps = [Sweeper(db, ttl_seconds=0).sweep() for db in replicas]
    newest_first = keys[::-1]
    outcomes = await asyncio.gather(*sweeps, *(commit(inventory, key) for key in newest_first), return_exceptions=True)
    return dict(zip(newest_first, outcomes[len(sweeps):], strict=True))


@each_form
async def test_sweeps_racing_commits_sell_each_reservation_exactly_once(inventory, db, settings):
    await put(inventory, "LAMP", 100)
    other_replica = await database(settings, "inventory")
    try:
        for round_ in range(5):
            keys = [f"r{round_}-{i}" for i in range(20)]
            for key in keys:
                await reserve(inventory, key, LAMP=1)
            commits = await race(inventory, (db, other_replica), keys)

            # a commit the sweeper beat takes its unit again (there are enough): every one is sold, once
            assert [getattr(o, "state", o) for o in commits.values()] == ["COMMITTED"] * 20
            assert {await state(db, key) for key in keys} == {"COMMITTED"}
            assert await stock(inventory, "LAMP") == (100 - 20 * (round_ + 1), 0, 20 * (round_ + 1))
    finally:
        await other_replica.dispose()


class Failures(logging.Handler):
    """Counts the errors logged; `enough` is set at the `wanted`-th."""

    def __init__(self, wanted: int) -> None:
        super().__init__(logging.ERROR)
        self.wanted, self.enough = wanted, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.wanted -= 1
        if self.wanted <= 0:
            self.enough.set()


async def test_the_sweep_loop_logs_a_database_error_and_keeps_sweeping(tmp_path):
    broken = Database(Settings(data_dir=tmp_path / "gone"), "inventory")
    shutil.rmtree(tmp_path / "gone")  # its file cannot be opened now
    failures, log = Failures(wanted=3), logging.getLogger("services.inventory.sweeper")
    log.addHandler(failures)
    loop = asyncio.create_task(Sweeper(broken, ttl_seconds=0).sweep_forever(interval_seconds=0.01))
    try:
        await asyncio.wait_for(failures.enough.wait(), timeout=5)
        assert not loop.done()
    finally:
        loop.cancel()
        log.removeHandler(failures)
        await broken.dispose()
