"""PaymentService: protobuf in and out, one transaction per call, the rules in domain.py."""

from prometheus_client import Counter
from sqlalchemy.engine import Connection

from sagashop.kit import metrics
from sagashop.kit.clock import rfc3339
from sagashop.kit.db import Database
from sagashop.kit.errors import Invalid, Rejected
from sagashop.kit.status import ServerContext
from sagashop.v1 import payment_pb2 as pb
from sagashop.v1 import payment_pb2_grpc
from sagashop.values import valid_step_keys

from .domain import CHARGE, CHARGED, REFUNDED, TOMBSTONE, Payment, authorize, replayed, valid_amount
from .repository import Payments

CHARGED_CENTS = Counter("sagashop_payment_charged_cents_total", "money charged, in cents", ["currency", "version"])
REFUNDED_CENTS = Counter("sagashop_payment_refunded_cents_total", "money refunded, in cents", ["currency", "version"])


def payment_pb(p: Payment) -> pb.Payment:
    status = "NONE" if p.status == TOMBSTONE else p.status  # a refund of a charge that never happened
    return pb.Payment(idempotency_key=p.key, order_id=p.order_id, status=status, amount_cents=p.amount_cents,
                      currency=p.currency)


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def Charge(self, request: pb.ChargeRequest, context: ServerContext) -> pb.Payment:
        valid_step_keys(request.idempotency_key, request.order_id)
        valid_amount(request.amount_cents, request.currency)

        def work(conn: Connection) -> tuple[Payment, bool]:
            payments = Payments(conn)
            try:
                authorize(request.payment_token)  # a refusal records nothing
            except Rejected:
                if (done := payments.payment(request.idempotency_key)) is None:
                    raise
                return replayed(done), False  # a retry gets the first answer
            charged = Payment(request.idempotency_key, request.order_id, CHARGED, request.amount_cents,
                              request.currency)
            if payments.add_if_absent(charged, CHARGE):  # with its ledger line; only a repeat reads the first
                return charged, True
            return replayed(payments.first(request.idempotency_key)), False

        payment, fresh = await self.db.autocommit(work)
        if fresh:
            CHARGED_CENTS.labels(payment.currency, metrics.version()).inc(payment.amount_cents)
        return payment_pb(payment)

    async def Refund(self, request: pb.RefundRequest, context: ServerContext) -> pb.Payment:
        valid_step_keys(request.idempotency_key, request.order_id)

        def work(conn: Connection) -> tuple[Payment, bool]:
            payments = Payments(conn)
            done = payments.payment(request.idempotency_key)
            if done is None:  # the charge never landed (or has not yet): make sure it never will
                return payments.add(Payment(request.idempotency_key, request.order_id, TOMBSTONE, 0, "")), False
            if done.status == CHARGED:
                return payments.refund(done, REFUNDED), True
            return done, False

        payment, fresh = await self.db.transaction(work)
        if fresh:
            REFUNDED_CENTS.labels(payment.currency, metrics.version()).inc(payment.amount_cents)
        return payment_pb(payment)

    async def ListLedger(self, request: pb.ListLedgerRequest, context: ServerContext) -> pb.Ledger:
        if not request.order_id or not request.order_id.isprintable():
            raise Invalid("order_id is required, in printable characters")
        lines = await self.db.autocommit(lambda conn: Payments(conn).ledger(request.order_id))
        return pb.Ledger(items=[pb.LedgerEntry(kind=line.kind, amount_cents=line.amount_cents, currency=line.currency,
                                               created_at=rfc3339(line.created_at)) for line in lines])
