import pytest

from sagashop.kit.errors import Compensated, Invalid
from services.payment.domain import (
    CHARGED,
    REFUNDED,
    TOMBSTONE,
    Payment,
    PaymentDeclined,
    authorize,
    replayed,
    valid_amount,
)


def test_the_ok_token_pays():
    authorize("tok_ok")


def test_the_declined_token_is_declined():
    with pytest.raises(PaymentDeclined, match="declined") as refused:
        authorize("tok_declined")
    assert refused.value.code == "payment_declined"


def test_an_unknown_token_is_declined_as_unknown():
    with pytest.raises(PaymentDeclined, match="unknown payment token"):
        authorize("tok_whatever")


@pytest.mark.parametrize("amount, currency", [(0, "EUR"), (-5, "EUR"), (100, "eur"), (100, "EURO"), (100, "")])
def test_a_charge_needs_a_positive_amount_and_a_three_letter_currency(amount, currency):
    with pytest.raises(Invalid):
        valid_amount(amount, currency)


def test_a_repeated_charge_replays_a_live_payment():
    payment = Payment("k1", "o1", CHARGED, 2500, "EUR")
    assert replayed(payment) is payment


@pytest.mark.parametrize("status", [REFUNDED, TOMBSTONE])
def test_a_repeated_charge_of_a_refunded_or_tombstoned_payment_is_refused(status):
    with pytest.raises(Compensated):
        replayed(Payment("k1", "o1", status, 0, ""))
