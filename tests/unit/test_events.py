"""The events' published contract: docs/asyncapi.json is what the models generate, and a consumer written against
version 1 of an event reads what the producer writes now."""

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from sagashop.events.catalog import EVENTS, Item, OrderApproved, PricedItem, StockReleased
from sagashop.events.envelope import Envelope, envelope
from tools import eventsdoc

ROOT = Path(__file__).resolve().parents[2]


def test_the_asyncapi_document_is_what_the_event_models_generate():
    committed = (ROOT / "docs" / "asyncapi.json").read_text()
    assert committed == eventsdoc.render(), "docs/asyncapi.json is stale: run `python -m tools.eventsdoc`"


def test_the_asyncapi_document_has_a_channel_and_schema_per_event():
    document = json.loads(eventsdoc.render())
    assert document["asyncapi"] == "3.0.0"
    for event in EVENTS:
        assert document["channels"][event.event_type]["address"] == f"sagashop.events.{event.event_type}"
        schema = document["components"]["schemas"][f"{event.event_type}.v1"]
        assert set(schema["required"]) >= {"event_id", "event_type", "event_version", "occurred_at", "metadata",
                                           "payload"}


def test_the_check_mode_fails_on_a_stale_document(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(eventsdoc, "PAGE", tmp_path / "asyncapi.json")
    eventsdoc.PAGE.write_text("{}\n")
    assert eventsdoc.main(["--check"]) == 1
    assert "python -m tools.eventsdoc" in capsys.readouterr().err
    assert eventsdoc.main([]) == 0 and eventsdoc.main(["--check"]) == 0


class OrderApprovedV1(BaseModel):
    """order.approved v1 as a consumer wrote it when v1 shipped: fields it does not know are ignored."""

    model_config = ConfigDict(extra="ignore")
    order_id: str
    user_id: str
    lines: list[PricedItem]
    total_cents: int
    currency: str
    charged_cents: int
    tracking_number: str


def test_a_version_1_consumer_reads_what_the_producer_writes_now():
    lines = [PricedItem(sku="LAMP", quantity=2, unit_price_cents=1500)]
    produced = envelope(OrderApproved(order_id="o1", user_id="u1", lines=lines, total_cents=3000, currency="EUR",
                                      charged_cents=3000, tracking_number="SS1"), correlation_id="o1")
    body = json.loads(produced.model_dump_json())
    body["payload"]["gift_wrap"] = True  # a field a later producer adds
    body["metadata"]["tenant"] = "t1"
    body["shard"] = 7

    read = Envelope[OrderApprovedV1].model_validate(body)

    assert read.payload.tracking_number == "SS1" and read.payload.lines == lines
    assert (read.event_type, read.event_version, read.metadata.correlation_id) == ("order.approved", 1, "o1")


def test_every_event_written_now_is_read_back_by_its_own_model():
    payload = StockReleased(reservation_id="r1", order_id="o1", lines=[Item(sku="LAMP", quantity=1)],
                            reason="expired")
    written = envelope(payload).model_dump_json()
    assert Envelope[StockReleased].model_validate_json(written).payload == payload
    assert json.loads(written)["occurred_at"].endswith("Z")
