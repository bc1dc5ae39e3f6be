"""The orchestrator's canary weights (a file per part, read at run time) and the pins of a new saga."""

import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.orchestrator.canary import Canary, Weights, version_of


class V2:
    """A part's v2 as the probes see it: answering or not; counts the probes."""

    def __init__(self, serving: bool) -> None:
        self.serving, self.probes = serving, 0

    async def is_serving(self, timeout: float) -> bool:
        self.probes += 1
        return self.serving


def gauge(part: str) -> float | None:
    return REGISTRY.get_sample_value("sagashop_canary_weight", {"part": part})


def test_a_missing_directory_or_file_counts_0(tmp_path: Path):
    (tmp_path / "payment").write_text("10")
    assert Weights(tmp_path / "absent").read() == {"order": 0, "inventory": 0, "payment": 0, "shipping": 0}
    assert Weights(tmp_path).read() == {"order": 0, "inventory": 0, "payment": 10, "shipping": 0}
    assert Weights(None).read()["payment"] == 0


def test_a_file_changed_is_read_again_and_shown_by_the_gauge(tmp_path: Path):
    weights = Weights(tmp_path)
    (tmp_path / "payment").write_text("25\n")
    assert weights.read()["payment"] == 25 and gauge("payment") == 25
    (tmp_path / "payment").write_text("100")
    assert weights.read()["payment"] == 100 and gauge("payment") == 100
    (tmp_path / "payment").unlink()
    assert weights.read()["payment"] == 0 and gauge("payment") == 0


@pytest.mark.parametrize("bad", ["ten", "150", "-1", "nan", "", "1,5"])
def test_a_bad_value_keeps_the_last_good_one_with_one_warning(tmp_path: Path, caplog, bad: str):
    weights = Weights(tmp_path)
    (tmp_path / "order").write_text("30")
    weights.read()
    (tmp_path / "order").write_text(bad)
    with caplog.at_level(logging.WARNING, "services.orchestrator.canary"):
        assert weights.read()["order"] == 30
        assert weights.read()["order"] == 30
    assert len(caplog.records) == 1 and "keeping 30" in caplog.records[0].getMessage()
    assert gauge("order") == 30
    (tmp_path / "order").write_text("40")
    assert weights.read()["order"] == 40


def test_only_the_parts_a_saga_calls_are_read(tmp_path: Path):
    (tmp_path / "user").write_text("100")
    (tmp_path / "gateway").write_text("100")
    assert set(Weights(tmp_path).read()) == {"order", "inventory", "payment", "shipping"}


async def test_a_saga_is_pinned_to_a_parts_v2_by_its_weight_only_while_that_v2_answers(tmp_path: Path):
    (tmp_path / "payment").write_text("100")
    v2 = {"order": V2(True), "inventory": V2(True), "payment": V2(False), "shipping": V2(True)}
    canary = Canary(Weights(tmp_path), v2)
    await canary.refresh()
    assert canary.pins() == {"order_version": "v1", "inventory_version": "v1", "payment_version": "v1",
                             "shipping_version": "v1", "route": "v1"}
    assert [v2[part].probes for part in ("order", "inventory", "payment", "shipping")] == [0, 0, 1, 0]

    v2["payment"].serving = True
    canary.probed_at["payment"] -= 10  # its next probe is due
    await canary.refresh()
    assert canary.pins() == {"order_version": "v1", "inventory_version": "v1", "payment_version": "v2",
                             "shipping_version": "v1", "route": "v2"}


async def test_a_probe_is_due_every_few_seconds_and_at_once_when_a_weight_rises_from_0(tmp_path: Path):
    payment = V2(True)
    canary = Canary(Weights(tmp_path), {"payment": payment})
    await canary.refresh()
    assert payment.probes == 0  # weight 0: never probed
    (tmp_path / "payment").write_text("50")
    await canary.refresh()
    await canary.refresh()
    assert payment.probes == 1
    (tmp_path / "payment").write_text("0")
    await canary.refresh()
    assert not canary.healthy["payment"]  # an old answer never pins a saga
    (tmp_path / "payment").write_text("50")
    await canary.refresh()
    assert payment.probes == 2 and canary.healthy["payment"]


async def test_pins_follow_the_weights(tmp_path: Path):
    (tmp_path / "shipping").write_text("50")
    canary = Canary(Weights(tmp_path), {"shipping": V2(True)})
    await canary.refresh()
    on_v2 = sum(canary.pins()["shipping_version"] == "v2" for _ in range(2_000))
    assert 800 < on_v2 < 1_200


def test_a_saga_pinned_as_a_whole_follows_its_route():
    assert version_of({"route": "v2"}, "payment") == "v2"
    assert version_of({"route": "v2", "payment_version": "v1"}, "payment") == "v1"
    assert version_of({}, "order") == "v1"
