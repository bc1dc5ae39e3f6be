"""What the event consumers built, for admins: the sales report (reporting) and the emails sent (notification).
Both are eventually consistent: they hold the events applied so far."""

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from sagashop.v1 import notification_pb2, reporting_pb2
from sagashop.values import MAX_ID

from ..deps import AdminUser, Backends
from ..problems import responses
from ..schemas import ID, Notification, NotificationList, Outcomes, SalesReport, SkuSales
from . import READ_WITHIN

router = APIRouter(tags=["reports"], responses=responses(401, 403))
DAY = "a UTC day, YYYY-MM-DD, inclusive"
OrderId = Annotated[str, Query(min_length=1, max_length=MAX_ID, pattern=ID)]


@router.get("/admin/reports/sales")
async def sales_report(admin: AdminUser, b: Backends,
                       from_: Annotated[date | None, Query(alias="from", description=DAY)] = None,
                       to: Annotated[date | None, Query(description=DAY)] = None) -> SalesReport:
    """Per SKU and currency, the units and revenue of the orders approved in the range less those cancelled in it,
    and the orders' outcomes. `to` is today (UTC) unless given, `from` is `to` unless given; a range of at most
    366 days."""
    last = to or datetime.now(UTC).date()
    request = reporting_pb2.SalesReportRequest(from_day=(from_ or last).isoformat(), to_day=last.isoformat())
    found = await b.reporting.call(b.reporting.stub.SalesReport, request, within=READ_WITHIN)
    return SalesReport(
        from_=found.from_day, to=found.to_day, as_of=found.as_of or None,
        items=[SkuSales(sku=s.sku, currency=s.currency, units=s.units, revenue_cents=s.revenue_cents)
               for s in found.items],
        orders=Outcomes(approved=found.approved, cancelled=found.cancelled, rejected=dict(found.rejected)),
        compensations=dict(found.compensations))


@router.get("/admin/notifications")
async def notifications(admin: AdminUser, b: Backends, order_id: OrderId) -> NotificationList:
    """The emails sent for the order, oldest first: one per order transition."""
    found = await b.notification.call(b.notification.stub.ListNotifications, notification_pb2.ListNotificationsRequest(
        order_id=order_id), within=READ_WITHIN)
    return NotificationList(items=[Notification(id=n.id, order_id=n.order_id, to=n.to, kind=n.kind,
                                                subject=n.subject, sent_at=n.sent_at) for n in found.items])
