"""ReportingService: the read models' answers, and their rebuild from the event stream."""

import logging
import time

from sagashop.events import rebuild
from sagashop.events.streams import Streams
from sagashop.kit.clock import rfc3339
from sagashop.kit.db import Database
from sagashop.kit.errors import Invalid, Unavailable
from sagashop.kit.status import ServerContext
from sagashop.v1 import reporting_pb2 as pb
from sagashop.v1 import reporting_pb2_grpc
from sagashop.values import MAX_ID

from .domain import report_range
from .repository import HANDLERS, Reports, clear

CONSUMER = "reporting"  # its durable consumers' name, its dead letters' and its lock's
log = logging.getLogger(__name__)


class ReportingServicer(reporting_pb2_grpc.ReportingServiceServicer):
    def __init__(self, db: Database, nats_url: str | None, streams: Streams) -> None:
        self.db, self.nats_url, self.streams = db, nats_url, streams

    async def OrderEvents(self, request: pb.OrderEventsRequest, context: ServerContext) -> pb.OrderEventList:
        order_id = request.order_id
        if not order_id or len(order_id) > MAX_ID or not order_id.isprintable():
            raise Invalid(f"order_id is required, at most {MAX_ID} printable characters")
        rows = await self.db.autocommit(lambda conn: Reports(conn).events(order_id))
        return pb.OrderEventList(items=[
            pb.OrderEvent(event_id=r.event_id, event_type=r.event_type, occurred_at=rfc3339(r.occurred_at),
                          payload_json=r.payload) for r in rows])

    async def SalesReport(self, request: pb.SalesReportRequest, context: ServerContext) -> pb.SalesReportReply:
        first, last = report_range(request.from_day, request.to_day)
        report = await self.db.autocommit(lambda conn: Reports(conn).report(first, last))
        return pb.SalesReportReply(
            from_day=first.isoformat(), to_day=last.isoformat(), as_of=rfc3339(report.as_of),
            items=[pb.SkuSales(sku=s.sku, currency=s.currency, units=s.units, revenue_cents=s.revenue_cents)
                   for s in report.items],
            approved=report.approved, cancelled=report.cancelled, rejected=report.rejected,
            compensations=report.compensations)

    async def Rebuild(self, request: pb.RebuildRequest, context: ServerContext) -> pb.RebuildReply:
        if not self.nats_url:
            raise Unavailable("no event stream to rebuild from: SAGASHOP_NATS_URL is not set",
                              code="events_unavailable")
        began = time.monotonic()
        events = await rebuild.rebuild(self.db, CONSUMER, self.nats_url, HANDLERS, clear, streams=self.streams)
        seconds = time.monotonic() - began
        log.info("the reporting read models were rebuilt from %d events in %.2f s", events, seconds)
        return pb.RebuildReply(events=events, seconds=seconds)
