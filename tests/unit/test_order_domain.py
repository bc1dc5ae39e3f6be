from datetime import UTC, datetime

import pytest

from sagashop.kit.errors import Invalid
from sagashop.values import Address
from services.order.domain import InvalidTransition, Order, PricedLine

AT = datetime(2025, 1, 1, tzinfo=UTC)
HOME = Address("Ada", "1 Main St", "Paris", "75001", "FR")


def pending(*items: PricedLine) -> Order:
    return Order.create("o1", "u1", list(items) or [PricedLine("LAMP", 2, 1500)], "EUR", HOME, at=AT)


def test_a_new_order_is_pending_with_nothing_charged_and_its_total_derived_from_the_lines():
    order = pending(PricedLine("LAMP", 2, 1500), PricedLine("SOFA", 1, 30000))

    assert (order.status, order.payment_status, order.payment_amount_cents) == ("PENDING", "NONE", 0)
    assert order.total_cents == 2 * 1500 + 30000
    assert order.created_at == order.updated_at == AT


@pytest.mark.parametrize("items", [[], [PricedLine(f"SKU-{i}", 1, 100) for i in range(51)],
                                   [PricedLine("LAMP", 0, 100)], [PricedLine("LAMP", 1, -1)]])
def test_an_order_needs_1_to_50_lines_of_at_least_one_unit_at_a_price_not_below_zero(items):
    with pytest.raises(Invalid):
        Order.create("o1", "u1", items, "EUR", HOME, at=AT)


@pytest.mark.parametrize("currency", ["eur", "EURO", ""])
def test_a_currency_is_three_capital_letters(currency):
    with pytest.raises(Invalid, match="currency"):
        Order.create("o1", "u1", [PricedLine("LAMP", 1, 100)], currency, HOME, at=AT)


@pytest.mark.parametrize(("order_id", "user_id"), [("", "u1"), ("x" * 65, "u1"), ("o1", "")])
def test_an_order_needs_an_id_and_a_user_of_at_most_64_characters(order_id, user_id):
    with pytest.raises(Invalid):
        Order.create(order_id, user_id, [PricedLine("LAMP", 1, 100)], "EUR", HOME, at=AT)


def test_an_address_outside_a_two_letter_country_is_refused():
    with pytest.raises(Invalid, match="country"):
        Order.create("o1", "u1", [PricedLine("LAMP", 1, 100)], "EUR", Address("Ada", "1", "P", "7", "France"), at=AT)


def test_approving_records_the_charge_and_the_tracking_number():
    approved = pending().approve("TRK-1", 3000)

    assert (approved.status, approved.payment_status, approved.payment_amount_cents) == ("APPROVED", "CHARGED", 3000)
    assert approved.tracking_number == "TRK-1"


def test_rejecting_after_a_refund_records_the_reason_and_the_refunded_amount():
    rejected = pending().reject("shipping_rejected", refunded=True, refunded_cents=3000)

    assert (rejected.status, rejected.failure_reason) == ("REJECTED", "shipping_rejected")
    assert (rejected.payment_status, rejected.payment_amount_cents) == ("REFUNDED", 3000)


def test_rejecting_without_a_charge_leaves_the_payment_at_none():
    rejected = pending().reject("out_of_stock", refunded=False, refunded_cents=0)

    assert (rejected.payment_status, rejected.payment_amount_cents) == ("NONE", 0)


def test_cancelling_an_approved_order_refunds_it_and_drops_the_shipment():
    cancelled = pending().approve("TRK-1", 3000).cancel()

    assert (cancelled.status, cancelled.payment_status) == ("CANCELLED", "REFUNDED")
    assert (cancelled.payment_amount_cents, cancelled.tracking_number) == (3000, "")


def test_repeating_the_move_that_already_happened_returns_the_order_unchanged():
    approved = pending().approve("TRK-1", 3000)
    rejected = pending().reject("payment_declined", refunded=False, refunded_cents=0)
    cancelled = approved.cancel()

    assert approved.approve("TRK-2", 1) is approved
    assert rejected.reject("out_of_stock", refunded=True, refunded_cents=5) is rejected
    assert cancelled.cancel() is cancelled


@pytest.mark.parametrize("move", [
    lambda o: o.reject("late", refunded=False, refunded_cents=0).approve("TRK-1", 3000),
    lambda o: o.approve("TRK-1", 3000).reject("late", refunded=False, refunded_cents=0),
    lambda o: o.cancel(),
    lambda o: o.reject("late", refunded=False, refunded_cents=0).cancel(),
    lambda o: o.approve("TRK-1", 3000).cancel().approve("TRK-1", 3000),
], ids=["approve_rejected", "reject_approved", "cancel_pending", "cancel_rejected", "approve_cancelled"])
def test_any_other_move_is_refused_as_an_invalid_transition(move):
    with pytest.raises(InvalidTransition) as refused:
        move(pending())
    assert refused.value.code == "invalid_transition"


def test_a_refused_move_changes_nothing():
    order = pending()

    with pytest.raises(InvalidTransition):
        order.cancel()

    assert order == pending()


def test_approving_without_a_tracking_number_is_invalid():
    with pytest.raises(Invalid):
        pending().approve("", 3000)
