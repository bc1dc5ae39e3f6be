"""Short seeded chaos campaigns: `sagashop chaos` as a user runs it, and its audits find nothing wrong."""

import json

from tools.chaos.eventpath import KINDS


def test_a_short_chaos_campaign_leaves_stock_money_shipments_and_the_event_side_intact(faulty):
    """Saga faults, and each fault of the event path once: the broker paused and killed, a relay crashed between
    publish and mark, a consumer replica killed, a poison event, the mail sink down. The event consumers then agree
    with the orders, the dead letters are the poison event's, and a rebuild changes nothing."""
    shop = faulty
    campaign = shop.chaos("--orders", "40", "--concurrency", "8", "--seed", "7", "--duration", "30", "--replicas",
                          "1", "--event-rounds", "1", "--outage", "3", "--json")

    assert campaign.returncode == 0, campaign.stdout + campaign.stderr
    report = json.loads(campaign.stdout)
    assert report["violations"] == []
    assert sum(report["outcomes"].values()) == 40
    assert sum(report["faults_fired"].values()) > 0
    own_broker = "SAGASHOP_EVENTS_NAME" not in shop.env  # the shop's NATS is up's own, not the machine's
    skipped = set(report["events"]["skipped"])
    assert skipped == (set() if own_broker else {"broker_pause", "broker_kill"})  # never the machine's server
    assert report["events"]["fired"] == {kind: 1 for kind in KINDS if kind not in skipped}
    assert report["relay_crashes"] == 1
    poison = report["events"]["poison"]
    assert len(poison) == 1 and len(report["event_audit"]["dead_letters"]) == 2  # one per consumer
    assert report["event_audit"]["notifications"] >= 40
    assert report["event_audit"]["rebuild"]["events"] > 0


def test_a_campaign_whose_sagas_outlive_their_reservations_sells_no_unit_twice(faulty):
    """An inventory replica of the campaign's own sweeps reservations after half a second: faults and kills hold
    sagas up for longer, and the audit still finds each SKU's units sold once, to the approved orders."""
    shop = faulty
    campaign = shop.chaos("--orders", "40", "--concurrency", "8", "--seed", "11", "--duration", "20", "--replicas",
                          "1", "--reservation-ttl", "0.5", "--event-rounds", "0")

    assert campaign.returncode == 0, campaign.stdout + campaign.stderr
    assert "reservations swept after 0.5s" in campaign.stdout
    assert "violations: 0" in campaign.stdout
