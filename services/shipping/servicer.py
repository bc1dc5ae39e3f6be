"""ShippingService: protobuf in and out, one transaction per call, the rules in domain.py."""

from sqlalchemy.engine import Connection

from sagashop.kit.db import Database
from sagashop.kit.errors import Invalid, Rejected
from sagashop.kit.status import ServerContext
from sagashop.v1 import shipping_pb2 as pb
from sagashop.v1 import shipping_pb2_grpc
from sagashop.values import Address, Line, valid_address, valid_lines, valid_step_keys

from .domain import CREATED, TOMBSTONE, Shipment, new_tracking_number, replayed, serviceable
from .repository import Shipments


def shipment_pb(s: Shipment) -> pb.Shipment:
    status = "NONE" if s.status == TOMBSTONE else s.status  # a cancel of a shipment that never existed
    return pb.Shipment(idempotency_key=s.key, order_id=s.order_id, status=status, tracking_number=s.tracking_number)


class ShippingServicer(shipping_pb2_grpc.ShippingServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def CreateShipment(self, request: pb.CreateShipmentRequest, context: ServerContext) -> pb.Shipment:
        valid_step_keys(request.idempotency_key, request.order_id)
        lines = valid_lines([Line(line.sku, line.quantity) for line in request.lines])
        a = request.address
        address = valid_address(Address(a.name, a.line1, a.city, a.postal_code, a.country))

        def work(conn: Connection) -> Shipment:
            shipments = Shipments(conn)
            try:
                serviceable(address)  # a refusal records nothing
            except Rejected:
                if (done := shipments.shipment(request.idempotency_key)) is None:
                    raise
                return replayed(done)  # a retry gets the first answer
            created = Shipment(request.idempotency_key, request.order_id, CREATED, new_tracking_number(),
                               address.country, lines)
            if shipments.add_if_absent(created):  # one statement; only a repeat reads the first shipment
                return created
            return replayed(shipments.first(request.idempotency_key))

        return shipment_pb(await self.db.autocommit(work))

    async def CancelShipment(self, request: pb.CancelShipmentRequest, context: ServerContext) -> pb.Shipment:
        valid_step_keys(request.idempotency_key, request.order_id)

        def work(conn: Connection) -> Shipment:
            shipments = Shipments(conn)
            done = shipments.shipment(request.idempotency_key)
            if done is None:  # the shipment never landed (or has not yet): make sure it never will
                return shipments.add(Shipment(request.idempotency_key, request.order_id, TOMBSTONE, "", "", ()))
            if done.status == CREATED:
                return shipments.cancel(done)
            return done

        return shipment_pb(await self.db.transaction(work))

    async def ListShipments(self, request: pb.ListShipmentsRequest,
                            context: ServerContext) -> pb.ShipmentList:
        if not request.order_id or not request.order_id.isprintable():
            raise Invalid("order_id is required, in printable characters")
        live = await self.db.autocommit(lambda conn: Shipments(conn).live(request.order_id))
        return pb.ShipmentList(items=[shipment_pb(s) for s in live])
