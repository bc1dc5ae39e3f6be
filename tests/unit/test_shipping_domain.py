import re

import pytest

from sagashop.kit.errors import Compensated
from sagashop.values import Address
from services.shipping.domain import (
    CANCELLED,
    CREATED,
    TOMBSTONE,
    Shipment,
    ShippingRejected,
    new_tracking_number,
    replayed,
    serviceable,
)


def address(country: str) -> Address:
    return Address("Ada", "1 Main St", "Paris", "75001", country)


def test_every_country_but_antarctica_is_served():
    assert serviceable(address("FR")).country == "FR"
    with pytest.raises(ShippingRejected, match="AQ") as refused:
        serviceable(address("AQ"))
    assert refused.value.code == "shipping_rejected"


def test_tracking_numbers_are_ss_and_twelve_hex_digits_and_do_not_repeat():
    numbers = {new_tracking_number() for _ in range(100)}
    assert len(numbers) == 100
    assert all(re.fullmatch(r"SS[0-9A-F]{12}", n) for n in numbers)


def test_a_repeated_create_replays_a_live_shipment():
    shipment = Shipment("k1", "o1", CREATED, "SS0123456789AB", "FR", ())
    assert replayed(shipment) is shipment


@pytest.mark.parametrize("status", [CANCELLED, TOMBSTONE])
def test_a_repeated_create_of_a_cancelled_or_tombstoned_shipment_is_refused(status):
    with pytest.raises(Compensated):
        replayed(Shipment("k1", "o1", status, "", "", ()))
