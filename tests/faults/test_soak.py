"""A bounded soak: a minute of steady orders with faults on; afterwards nothing is lost and no part's memory grew."""

import json
import subprocess
import sys

import pytest


def test_a_minute_of_orders_under_faults_loses_nothing_and_memory_stays_flat(faulty, request):
    if "postgres" in request.node.callspec.id:
        pytest.skip("one soak (on SQLite) fits CI's time; the long campaign in the README runs on PostgreSQL")
    shop = faulty
    soak = subprocess.run(
        [sys.executable, "-m", "services.cli", "chaos", "--url", shop.url, "--orders", "240", "--concurrency", "8",
         "--seed", "11", "--duration", "60", "--replicas", "0", "--json"],
        env=shop.env, capture_output=True, text=True, timeout=600)

    assert soak.returncode == 0, soak.stdout[-3000:] + soak.stderr[-3000:]
    report = json.loads(soak.stdout)
    assert report["violations"] == []
    assert sum(report["outcomes"].values()) == 240
    memory = report["memory_mib"]
    assert set(memory) >= {"gateway", "orchestrator", "inventory", "payment"}
    for part, samples in memory.items():
        warmed = samples[len(samples) // 3]  # after a third of the run: imports, pools and caches are in place
        assert samples[-1] <= warmed * 1.25 + 5, f"{part} grew from {warmed} to {samples[-1]} MiB: {samples}"
