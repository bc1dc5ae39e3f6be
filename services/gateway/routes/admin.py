"""Admin views across services: what each service holds for an order or a product."""

from fastapi import APIRouter

from sagashop.v1 import inventory_pb2, payment_pb2, shipping_pb2

from ..deps import AdminUser, Backends
from ..problems import responses
from ..schemas import IdPath, Ledger, LedgerLine, Shipment, ShipmentList, SkuPath, Stock
from . import READ_WITHIN

router = APIRouter(tags=["admin"], responses=responses(401, 403))


@router.get("/admin/orders/{order_id}/payments")
async def order_payments(order_id: IdPath, admin: AdminUser, b: Backends) -> Ledger:
    """Every ledger line the payment service holds for the order."""
    ledger = await b.payment.call(b.payment.stub.ListLedger, payment_pb2.ListLedgerRequest(order_id=order_id),
                                  within=READ_WITHIN)
    return Ledger(items=[LedgerLine(kind=x.kind, amount_cents=x.amount_cents, created_at=x.created_at)
                         for x in ledger.items])


@router.get("/admin/orders/{order_id}/shipments")
async def order_shipments(order_id: IdPath, admin: AdminUser, b: Backends) -> ShipmentList:
    """The order's live (not cancelled) shipments."""
    found = await b.shipping.call(b.shipping.stub.ListShipments, shipping_pb2.ListShipmentsRequest(
        order_id=order_id), within=READ_WITHIN)
    return ShipmentList(items=[Shipment(tracking_number=x.tracking_number, status=x.status) for x in found.items])


@router.get("/admin/products/{sku}", responses=responses(404))
async def product_stock(sku: SkuPath, admin: AdminUser, b: Backends) -> Stock:
    p = await b.inventory.call(b.inventory.stub.GetProduct, inventory_pb2.GetProductRequest(sku=sku),
                               within=READ_WITHIN)
    return Stock(sku=p.sku, name=p.name, price_cents=p.price_cents, currency=p.currency, available=p.available,
                 reserved=p.reserved, sold=p.sold)
