"""InventoryService: protobuf in and out, one transaction per call, the rules in domain.py."""

import logging
from collections.abc import Iterable

from prometheus_client import Counter
from sqlalchemy.engine import Connection

from sagashop.kit import metrics
from sagashop.kit.db import Database
from sagashop.kit.errors import Compensated, NotFound
from sagashop.kit.status import ServerContext
from sagashop.v1 import inventory_pb2 as pb
from sagashop.v1 import inventory_pb2_grpc
from sagashop.values import Line, valid_lines, valid_sku, valid_step_keys

from .domain import Product, valid_product, valid_skus
from .repository import COUNTER, EXPIRED, HELD, RELEASED, TOMBSTONE, Inventory, Reservation

log = logging.getLogger(__name__)
UNITS = Counter("sagashop_inventory_units_total", "units reserved, committed (sold) and released by the sagas' calls",
                ["movement", "version"])


def moved(movement: str, lines: Iterable[Line]) -> None:
    UNITS.labels(movement, metrics.version()).inc(sum(line.quantity for line in lines))


def product_pb(p: Product) -> pb.Product:
    return pb.Product(sku=p.sku, name=p.name, price_cents=p.price_cents, currency=p.currency,
                      available=p.available, reserved=p.reserved, sold=p.sold)


def reservation_pb(r: Reservation) -> pb.Reservation:
    return pb.Reservation(idempotency_key=r.key, order_id=r.order_id, state=r.state,
                          lines=[{"sku": line.sku, "quantity": line.quantity} for line in r.lines])


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ListProducts(self, request: pb.ListProductsRequest, context: ServerContext) -> pb.ProductList:
        skus = valid_skus(list(request.skus))
        found = await self.db.autocommit(lambda conn: Inventory(conn).products(skus))
        return pb.ProductList(items=[product_pb(p) for p in found])

    async def GetProduct(self, request: pb.GetProductRequest, context: ServerContext) -> pb.Product:
        sku = valid_sku(request.sku)
        if (found := await self.db.autocommit(lambda conn: Inventory(conn).product(sku))) is None:
            raise NotFound(f"no product {request.sku!r}")
        return product_pb(found)

    async def UpsertProduct(self, request: pb.UpsertProductRequest, context: ServerContext) -> pb.Product:
        p = request.product
        wanted = valid_product(Product(p.sku, p.name, p.price_cents, p.currency, p.available))

        def work(conn: Connection) -> Product:
            return Inventory(conn).upsert(wanted, only_if_absent=request.only_if_absent)

        return product_pb(await self.db.transaction(work))

    async def ReserveStock(self, request: pb.ReserveStockRequest, context: ServerContext) -> pb.Reservation:
        valid_step_keys(request.idempotency_key, request.order_id)
        lines = valid_lines([Line(line.sku, line.quantity) for line in request.lines])

        def work(conn: Connection) -> tuple[Reservation, bool]:
            inventory = Inventory(conn)
            held = Reservation(request.idempotency_key, request.order_id, HELD, lines)
            if (done := inventory.reserve(held)) is None:  # a refusal raises, having taken nothing
                return held, True
            if done.state == EXPIRED:  # its saga retries after the sweeper gave the units back
                if (again := inventory.take_again(done.key, "reserved")) is not None:
                    return again, True
                done = inventory.reservation(done.key) or done  # taken again by a concurrent retry meanwhile
            if done.state in (RELEASED, TOMBSTONE, EXPIRED):
                raise Compensated(f"reservation {done.key} was already released")
            return done, False  # a retry gets the first answer

        reservation, fresh = await self.db.autocommit(work)
        if fresh:
            moved("reserved", reservation.lines)
        return reservation_pb(reservation)

    async def ReleaseStock(self, request: pb.ReleaseStockRequest, context: ServerContext) -> pb.Reservation:
        valid_step_keys(request.idempotency_key, request.order_id)

        def work(conn: Connection) -> tuple[Reservation, bool]:
            inventory = Inventory(conn)
            done = inventory.reservation_for_update(request.idempotency_key)
            if done is None:  # the reserve never landed (or has not yet): make sure it never will
                return inventory.add_reservation(
                    Reservation(request.idempotency_key, request.order_id, TOMBSTONE, ())), False
            if done.state in COUNTER:
                return inventory.release(done), True
            if done.state == EXPIRED:  # its units went back already; RELEASED, a late commit cannot take them again
                return inventory.set_state(done, RELEASED), False
            return done, False

        reservation, fresh = await self.db.transaction(work)
        if fresh:
            moved("released", reservation.lines)
        return reservation_pb(reservation)

    async def CommitStock(self, request: pb.CommitStockRequest, context: ServerContext) -> pb.Reservation:
        """Sells a reservation's units. One the sweeper expired while its saga was held up (an orchestrator down
        for longer than the TTL) has its units taken again if they are still there, or is refused with
        out_of_stock: its saga then compensates, and nothing it did is irreversible yet (the checkout commits its
        stock before it ships)."""
        valid_step_keys(request.idempotency_key, request.order_id)

        def work(conn: Connection) -> tuple[Reservation, bool]:
            inventory = Inventory(conn)
            key = request.idempotency_key
            if (committed := inventory.commit_held(key)) is not None:
                return committed, True
            if (done := inventory.reservation(key)) is not None and done.state == EXPIRED:
                if (committed := inventory.take_again(key, "sold")) is not None:
                    log.warning("reservation %s of order %s had expired: its units were taken again", key,
                                done.order_id)
                    return committed, True
                done = inventory.reservation(key)  # committed or released by a concurrent call meanwhile
            if done is None:
                raise NotFound(f"no reservation {key!r}")
            if done.state in (RELEASED, TOMBSTONE):
                raise Compensated(f"reservation {done.key} was already released")
            return done, False  # committed already: a retry gets the first answer

        reservation, fresh = await self.db.autocommit(work)
        if fresh:
            moved("committed", reservation.lines)
        return reservation_pb(reservation)
