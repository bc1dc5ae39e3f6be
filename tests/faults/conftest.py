from collections.abc import Iterator

import pytest

from tests.shop import Shop


@pytest.fixture
def faulty(shop: Shop) -> Iterator[Shop]:
    """The shared shop, its fault rules cleared again after the test (whatever it broke)."""
    yield shop
    shop.ready_again()
    shop.clear_faults()
