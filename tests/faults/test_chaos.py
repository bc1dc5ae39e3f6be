"""A short seeded chaos campaign: `sagashop chaos` as a user runs it, and its audit finds nothing wrong."""

import subprocess
import sys


def test_a_short_chaos_campaign_leaves_stock_money_and_shipments_intact(faulty):
    shop = faulty
    campaign = subprocess.run(
        [sys.executable, "-m", "tools.cli", "chaos", "--url", shop.url, "--orders", "40", "--concurrency", "8",
         "--seed", "7", "--duration", "30", "--replicas", "1"],
        env=shop.env, capture_output=True, text=True, timeout=600)

    assert campaign.returncode == 0, campaign.stdout + campaign.stderr
    assert "violations: 0" in campaign.stdout
    outcomes = campaign.stdout.split("orders by outcome:")[1].split("faults fired")[0]
    assert sum(int(line.split()[0]) for line in outcomes.strip().splitlines()) == 40
    assert "faults fired: 0" not in campaign.stdout


def test_a_campaign_whose_sagas_outlive_their_reservations_sells_no_unit_twice(faulty):
    """An inventory replica of the campaign's own sweeps reservations after half a second: faults and kills hold
    sagas up for longer, and the audit still finds each SKU's units sold once, to the approved orders."""
    shop = faulty
    campaign = subprocess.run(
        [sys.executable, "-m", "tools.cli", "chaos", "--url", shop.url, "--orders", "40", "--concurrency", "8",
         "--seed", "11", "--duration", "20", "--replicas", "1", "--reservation-ttl", "0.5"],
        env=shop.env, capture_output=True, text=True, timeout=600)

    assert campaign.returncode == 0, campaign.stdout + campaign.stderr
    assert "reservations swept after 0.5s" in campaign.stdout
    assert "violations: 0" in campaign.stdout
