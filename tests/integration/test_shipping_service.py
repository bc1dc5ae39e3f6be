import asyncio
import re

import pytest

from sagashop.kit.errors import Compensated, Invalid, Rejected
from sagashop.v1 import shipping_pb2 as pb
from sagashop.v1 import shipping_pb2_grpc
from services.shipping.main import SERVICE
from services.shipping.servicer import ShippingServicer

PARIS = {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"}


@pytest.fixture
async def shipping(grpc_service):
    return await grpc_service("shipping", shipping_pb2_grpc.add_ShippingServiceServicer_to_server, ShippingServicer,
                              shipping_pb2_grpc.ShippingServiceStub, SERVICE)


async def ship(shipping, key: str, lines: dict[str, int] | None = None, **address: str) -> pb.Shipment:
    lines = {"LAMP": 1} if lines is None else lines
    request = pb.CreateShipmentRequest(idempotency_key=key, order_id="order-1", address={**PARIS, **address},
                                       lines=[{"sku": sku, "quantity": q} for sku, q in lines.items()])
    return await shipping.call(shipping.stub.CreateShipment, request)


async def cancel(shipping, key: str) -> pb.Shipment:
    request = pb.CancelShipmentRequest(idempotency_key=key, order_id="order-1")
    return await shipping.call(shipping.stub.CancelShipment, request)


async def live(shipping, order_id: str = "order-1") -> list[str]:
    found = await shipping.call(shipping.stub.ListShipments, pb.ListShipmentsRequest(order_id=order_id))
    return [s.tracking_number for s in found.items]


async def test_a_shipment_gets_a_tracking_number_and_stays_listed_until_cancelled(shipping):
    shipment = await ship(shipping, "k1")
    assert shipment.status == "CREATED"
    assert re.fullmatch(r"SS[0-9A-F]{12}", shipment.tracking_number)
    assert await live(shipping) == [shipment.tracking_number]

    cancelled = await cancel(shipping, "k1")
    assert (cancelled.status, cancelled.tracking_number) == ("CANCELLED", shipment.tracking_number)
    assert await live(shipping) == []


async def test_a_repeated_create_replays_the_first_shipment(shipping):
    first = await ship(shipping, "k1")
    again = await ship(shipping, "k1")
    assert again == first
    assert await live(shipping) == [first.tracking_number]


async def test_a_repeated_cancel_replays_the_cancellation(shipping):
    await ship(shipping, "k1")
    first = await cancel(shipping, "k1")
    assert await cancel(shipping, "k1") == first


async def test_a_cancel_before_its_create_leaves_a_tombstone_that_refuses_the_late_create(shipping):
    nothing = await cancel(shipping, "k1")
    assert (nothing.status, nothing.tracking_number) == ("NONE", "")
    with pytest.raises(Compensated):
        await ship(shipping, "k1")
    assert await live(shipping) == []


async def test_a_create_repeated_after_its_cancel_is_refused(shipping):
    await ship(shipping, "k1")
    await cancel(shipping, "k1")
    with pytest.raises(Compensated):
        await ship(shipping, "k1")
    assert await live(shipping) == []


async def test_a_repeat_of_a_made_shipment_gets_it_back_even_where_the_address_is_refused_now(shipping):
    first = await ship(shipping, "k1")
    assert await ship(shipping, "k1", country="AQ") == first
    assert await live(shipping) == [first.tracking_number]


async def test_antarctica_is_refused_and_nothing_is_shipped(shipping):
    with pytest.raises(Rejected) as refused:
        await ship(shipping, "k1", country="AQ")
    assert refused.value.code == "shipping_rejected"
    assert await live(shipping) == []


@pytest.mark.parametrize("key, lines, address", [
    ("", {"LAMP": 1}, {}),
    ("k1", {}, {}),
    ("k1", {"LAMP": 0}, {}),
    ("k1", {"LAMP": 1}, {"country": "fr"}),
    ("k1", {"LAMP": 1}, {"city": " "}),
])
async def test_bad_shipments_are_refused_as_validation_errors(shipping, key, lines, address):
    with pytest.raises(Invalid):
        await ship(shipping, key, lines, **address)


async def test_listing_needs_an_order_and_shows_only_its_shipments(shipping):
    await ship(shipping, "k1")
    assert await live(shipping, "order-2") == []
    with pytest.raises(Invalid):
        await live(shipping, "")


async def test_concurrent_creates_with_one_key_make_exactly_one_shipment(shipping):
    outcomes = await asyncio.gather(*(ship(shipping, "k1") for _ in range(10)))
    assert len({o.tracking_number for o in outcomes}) == 1
    assert await live(shipping) == [outcomes[0].tracking_number]
