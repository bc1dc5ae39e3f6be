"""Admin views across services."""

from fastapi import APIRouter

from sagashop.v1 import payment_pb2

from ..deps import AdminUser, Backends
from ..schemas import Ledger, LedgerLine
from . import READ_WITHIN

router = APIRouter(tags=["admin"])


@router.get("/admin/orders/{order_id}/payments")
async def order_payments(order_id: str, admin: AdminUser, b: Backends) -> Ledger:
    ledger = await b.payment.call(b.payment.stub.ListLedger, payment_pb2.ListLedgerRequest(order_id=order_id),
                                  within=READ_WITHIN)
    return Ledger(items=[LedgerLine(kind=x.kind, amount_cents=x.amount_cents, created_at=x.created_at)
                         for x in ledger.items])
