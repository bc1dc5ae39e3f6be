"""InventoryService: protobuf in and out, one transaction per call, the rules in domain.py."""

import grpc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sagashop.kit.db import transaction
from sagashop.kit.errors import Compensated, NotFound
from sagashop.v1 import inventory_pb2 as pb
from sagashop.v1 import inventory_pb2_grpc
from sagashop.values import Line, valid_lines, valid_step_keys

from .domain import Product, valid_product, why_not_taken
from .repository import COMMITTED, COUNTER, EXPIRED, HELD, RELEASED, TOMBSTONE, Inventory, Reservation


def product_pb(p: Product) -> pb.Product:
    return pb.Product(sku=p.sku, name=p.name, price_cents=p.price_cents, currency=p.currency,
                      available=p.available, reserved=p.reserved, sold=p.sold)


def reservation_pb(r: Reservation) -> pb.Reservation:
    return pb.Reservation(idempotency_key=r.key, order_id=r.order_id, state=r.state,
                          lines=[{"sku": line.sku, "quantity": line.quantity} for line in r.lines])


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, db: AsyncEngine) -> None:
        self.db = db

    async def ListProducts(self, request: pb.ListProductsRequest, context: grpc.aio.ServicerContext) -> pb.ProductList:
        async with self.db.connect() as conn:
            found = await Inventory(conn).products(list(request.skus))
        return pb.ProductList(items=[product_pb(p) for p in found])

    async def GetProduct(self, request: pb.GetProductRequest, context: grpc.aio.ServicerContext) -> pb.Product:
        async with self.db.connect() as conn:
            if (found := await Inventory(conn).product(request.sku)) is None:
                raise NotFound(f"no product {request.sku!r}")
        return product_pb(found)

    async def UpsertProduct(self, request: pb.UpsertProductRequest, context: grpc.aio.ServicerContext) -> pb.Product:
        p = request.product
        wanted = valid_product(Product(p.sku, p.name, p.price_cents, p.currency, p.available))

        async def work(conn: AsyncConnection) -> Product:
            return await Inventory(conn).upsert(wanted, only_if_absent=request.only_if_absent)

        return product_pb(await transaction(self.db, work))

    async def ReserveStock(self, request: pb.ReserveStockRequest, context: grpc.aio.ServicerContext) -> pb.Reservation:
        valid_step_keys(request.idempotency_key, request.order_id)
        lines = valid_lines([Line(line.sku, line.quantity) for line in request.lines])

        async def work(conn: AsyncConnection) -> Reservation:
            inventory = Inventory(conn)
            if (done := await inventory.reservation(request.idempotency_key)) is not None:
                if done.state in (RELEASED, TOMBSTONE, EXPIRED):
                    raise Compensated(f"reservation {done.key} was already released")
                return done  # a retry gets the first answer
            for line in sorted(lines, key=lambda x: x.sku):
                if not await inventory.take(line):
                    raise why_not_taken(await inventory.product(line.sku), line)  # rolls back earlier lines
            return await inventory.add_reservation(Reservation(request.idempotency_key, request.order_id, HELD, lines))

        return reservation_pb(await transaction(self.db, work))

    async def ReleaseStock(self, request: pb.ReleaseStockRequest, context: grpc.aio.ServicerContext) -> pb.Reservation:
        valid_step_keys(request.idempotency_key, request.order_id)

        async def work(conn: AsyncConnection) -> Reservation:
            inventory = Inventory(conn)
            done = await inventory.reservation_for_update(request.idempotency_key)
            if done is None:  # the reserve never landed (or has not yet): make sure it never will
                return await inventory.add_reservation(
                    Reservation(request.idempotency_key, request.order_id, TOMBSTONE, ()))
            if done.state in COUNTER:
                await inventory.move(done.lines, COUNTER[done.state], "available")
                return await inventory.set_state(done, RELEASED)
            return done

        return reservation_pb(await transaction(self.db, work))

    async def CommitStock(self, request: pb.CommitStockRequest, context: grpc.aio.ServicerContext) -> pb.Reservation:
        valid_step_keys(request.idempotency_key, request.order_id)

        async def work(conn: AsyncConnection) -> Reservation:
            inventory = Inventory(conn)
            done = await inventory.reservation_for_update(request.idempotency_key)
            if done is None:
                raise NotFound(f"no reservation {request.idempotency_key!r}")
            if done.state in (RELEASED, TOMBSTONE, EXPIRED):
                raise Compensated(f"reservation {done.key} was already released")
            if done.state == HELD:
                await inventory.move(done.lines, "reserved", "sold")
                return await inventory.set_state(done, COMMITTED)
            return done

        return reservation_pb(await transaction(self.db, work))
