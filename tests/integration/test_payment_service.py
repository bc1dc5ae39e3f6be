import asyncio
from datetime import datetime

import asyncpg
import grpc
import pytest

from sagashop.kit.errors import Compensated, Invalid, Rejected
from sagashop.v1 import payment_pb2 as pb
from sagashop.v1 import payment_pb2_grpc
from services.payment.main import SERVICE
from services.payment.servicer import PaymentServicer
from tests.integration.forms import each_form

pytestmark = each_form


@pytest.fixture
async def payments(grpc_service, portable_only):
    return await grpc_service("payment", payment_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentServicer,
                              payment_pb2_grpc.PaymentServiceStub, SERVICE, portable_only=portable_only)


async def charge(payments, key: str, amount: int = 2500, token: str = "tok_ok", currency: str = "EUR") -> pb.Payment:
    request = pb.ChargeRequest(idempotency_key=key, order_id="order-1", amount_cents=amount, currency=currency,
                               payment_token=token)
    return await payments.call(payments.stub.Charge, request)


async def refund(payments, key: str) -> pb.Payment:
    return await payments.call(payments.stub.Refund, pb.RefundRequest(idempotency_key=key, order_id="order-1"))


async def ledger(payments, order_id: str = "order-1") -> list[tuple[str, int]]:
    lines = (await payments.call(payments.stub.ListLedger, pb.ListLedgerRequest(order_id=order_id))).items
    return [(line.kind, line.amount_cents) for line in lines]


async def test_a_charge_and_its_refund_each_write_one_ledger_line_in_time_order(payments):
    charged = await charge(payments, "k1")
    assert (charged.status, charged.amount_cents, charged.currency) == ("CHARGED", 2500, "EUR")
    refunded = await refund(payments, "k1")
    assert (refunded.status, refunded.amount_cents) == ("REFUNDED", 2500)

    lines = (await payments.call(payments.stub.ListLedger, pb.ListLedgerRequest(order_id="order-1"))).items
    assert [(line.kind, line.amount_cents, line.currency) for line in lines] == [
        ("charge", 2500, "EUR"), ("refund", 2500, "EUR")]
    assert all(line.created_at.endswith("Z") and datetime.fromisoformat(line.created_at) for line in lines)


async def test_a_repeated_charge_replays_the_first_answer_and_charges_once(payments):
    first = await charge(payments, "k1")
    again = await charge(payments, "k1")
    assert again == first
    assert await ledger(payments) == [("charge", 2500)]


async def test_a_repeat_of_a_made_charge_gets_its_first_answer_whatever_its_token_says_now(payments):
    first = await charge(payments, "k1")
    assert await charge(payments, "k1", token="tok_declined") == first
    await refund(payments, "k1")
    with pytest.raises(Compensated):  # refunded since: the repeat is told so, not declined
        await charge(payments, "k1", token="tok_declined")
    assert await ledger(payments) == [("charge", 2500), ("refund", 2500)]


async def test_a_repeated_refund_refunds_once(payments):
    await charge(payments, "k1")
    await refund(payments, "k1")
    again = await refund(payments, "k1")
    assert again.status == "REFUNDED"
    assert await ledger(payments) == [("charge", 2500), ("refund", 2500)]


async def test_a_refund_before_its_charge_leaves_a_tombstone_that_refuses_the_late_charge(payments):
    nothing = await refund(payments, "k1")
    assert (nothing.status, nothing.amount_cents) == ("NONE", 0)
    with pytest.raises(Compensated):
        await charge(payments, "k1")
    assert await ledger(payments) == []


async def test_a_charge_repeated_after_its_refund_is_refused_and_charges_nothing(payments):
    await charge(payments, "k1")
    await refund(payments, "k1")
    with pytest.raises(Compensated):
        await charge(payments, "k1")
    assert await ledger(payments) == [("charge", 2500), ("refund", 2500)]


async def test_declined_and_unknown_tokens_are_refused_and_record_nothing(payments):
    with pytest.raises(Rejected) as declined:
        await charge(payments, "k1", token="tok_declined")
    with pytest.raises(Rejected) as unknown:
        await charge(payments, "k2", token="tok_whatever")
    assert declined.value.code == unknown.value.code == "payment_declined"
    assert "unknown" in unknown.value.detail
    assert await ledger(payments) == []


async def test_bad_requests_are_refused_as_validation_errors(payments):
    with pytest.raises(Invalid):
        await charge(payments, "")
    with pytest.raises(Invalid):
        await charge(payments, "k1", amount=0)
    with pytest.raises(Invalid):
        await charge(payments, "k1", currency="eu")
    with pytest.raises(Invalid):
        await refund(payments, "")
    with pytest.raises(Invalid):
        await payments.call(payments.stub.ListLedger, pb.ListLedgerRequest())


async def test_concurrent_charges_with_one_key_leave_exactly_one_charge_line(payments):
    outcomes = await asyncio.gather(*(charge(payments, "k1") for _ in range(10)))
    assert {(o.idempotency_key, o.status) for o in outcomes} == {("k1", "CHARGED")}
    assert await ledger(payments) == [("charge", 2500)]


async def test_concurrent_refunds_of_one_charge_leave_exactly_one_refund_line(payments):
    await charge(payments, "k1")
    outcomes = await asyncio.gather(*(refund(payments, "k1") for _ in range(10)))
    assert {o.status for o in outcomes} == {"REFUNDED"}
    assert await ledger(payments) == [("charge", 2500), ("refund", 2500)]


async def test_the_ledger_holds_only_the_lines_of_the_order_asked_for(payments):
    await charge(payments, "k1")
    assert await ledger(payments, "order-2") == []


async def test_a_lost_database_connection_is_answered_unavailable_and_the_retry_lands_once(payments, settings):
    if not settings.database_url:
        pytest.skip("PostgreSQL drops connections; a SQLite file has none to drop")
    await charge(payments, "warm")  # the pool now holds a connection
    conn = await asyncpg.connect(settings.database_url)
    try:  # the server ends every other session on the service's database, as a restart would
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await conn.close()
    request = pb.ChargeRequest(idempotency_key="k-lost", order_id="order-1", amount_cents=700, currency="EUR",
                               payment_token="tok_ok")

    with pytest.raises(grpc.aio.AioRpcError) as lost:
        await payments.stub.Charge(request, timeout=5, metadata=payments.metadata)
    assert lost.value.code() == grpc.StatusCode.UNAVAILABLE  # transient: callers retry it
    assert dict(lost.value.trailing_metadata())["error-code"] == "database_unavailable"

    charged = await payments.call(payments.stub.Charge, request, within=5)
    assert (charged.status, charged.amount_cents) == ("CHARGED", 700)
    assert (await ledger(payments)).count(("charge", 700)) == 1
