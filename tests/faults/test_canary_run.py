"""`sagashop canary run` on a copy of istio/, judged by a real Prometheus that scrapes a real shop's orchestrator.

The shop pins half its sagas to payment v2 (a `serve payment` process of its own, SAGASHOP_VERSION=v2), whatever
the file weights say: without a cluster, `run` shifts only the files, and the orchestrator keeps the weight of its
own weights directory. Without Istio there are no request metrics: payment is judged on its sagas
(`payment_version`).
"""

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from sagashop.v1 import common_pb2, faults_pb2, faults_pb2_grpc
from tests.conftest import missing
from tests.shop import Shop, spawn, start_shop, stop_shop, wait_ready
from tools.canary import files as canary
from tools.local.parts import free_port
from tools.local.up import METRICS_OFFSET

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    return shutil.which("prometheus") or missing("no `prometheus` on PATH",
                                                 "`make prometheus` installs Debian's package (as root)")


@pytest.fixture(scope="module")
def canary_shop(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shop, int]]:
    """A shop whose orchestrator pins half of the new sagas to payment v2; the shop and payment v2's port."""
    tmp, v2_port = tmp_path_factory.mktemp("canary-shop"), free_port()
    with pytest.MonkeyPatch.context() as env:
        (weights := tmp / "canary").mkdir()
        (weights / "payment").write_text("50")
        env.setenv("SAGASHOP_CANARY_WEIGHTS_DIR", str(weights))
        env.setenv("SAGASHOP_CANARY_ADDRESSES", json.dumps({"payment": f"127.0.0.1:{v2_port}"}))
        process, shop_env, log = start_shop(tmp, None)
    url = f"http://127.0.0.1:{shop_env['SAGASHOP_GATEWAY_PORT']}"
    payment_v2 = None
    try:
        wait_ready(url, process, log)
        payment_v2, _ = spawn("payment", shop_env, (tmp / "payment-v2.log").open("wb"), port=v2_port,
                              SAGASHOP_VERSION="v2")
        with Shop(url, shop_env, process.pid, log) as shop:
            yield shop, v2_port
    finally:
        if payment_v2 is not None:
            stop_shop(payment_v2)
        stop_shop(process)


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str, canary_shop: tuple[Shop, int],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus of its own (temporary storage, a free port) scraping the orchestrator every second; its URL."""
    shop, _ = canary_shop
    tmp, port = tmp_path_factory.mktemp("prometheus"), free_port()
    target = f"127.0.0.1:{int(shop.env['SAGASHOP_ORCHESTRATOR_PORT']) + METRICS_OFFSET}"
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "orchestrator", "static_configs": [{"targets": [target]}]}]}
    (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    process = subprocess.Popen([prometheus_binary, f"--config.file={tmp / 'prometheus.yml'}",
                                f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=(tmp / "prometheus.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not scraped(url):
            assert time.monotonic() < deadline and process.poll() is None, (tmp / "prometheus.log").read_text()[-3000:]
            time.sleep(0.5)
        yield url
    finally:
        stop_shop(process)  # SIGTERM, then SIGKILL if it lingers


def scraped(url: str) -> bool:
    """Prometheus answers and has scraped the orchestrator."""
    try:
        reply = httpx.get(f"{url}/api/v1/query", params={"query": 'up{job="orchestrator"}'}, timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    return [item["value"][1] for item in reply["data"]["result"]] == ["1"]


def canary_run(shop: Shop, prometheus: str, istio_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Two short steps under a small load of the shop's own; every part of it is bounded in time."""
    command = [sys.executable, "-m", "tools.cli", "canary", "run", "payment", "--steps", "50,100",
               "--interval", "4s", "--min-sagas", "3", "--extra-intervals", "6", "--load", "4", "--url", shop.url,
               "--load-sku", shop.product(stock=1_000), "--prometheus", prometheus, "--dir", str(istio_dir), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def istio_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ROOT / "istio", tmp_path / "istio"))


def test_a_healthy_canary_is_promoted_after_every_step(canary_shop, prometheus, istio_dir):
    shop, _ = canary_shop
    done = canary_run(shop, prometheus, istio_dir, "--max-p99-ratio", "10", "--json")  # no timing verdict here

    assert done.returncode == 0, done.stdout + done.stderr
    assert canary.file_weights("payment", istio_dir) == (0, 100)
    result = json.loads(done.stdout)
    assert (result["decision"], result["reasons"]) == ("promoted", [])
    judged = [step for step in result["steps"] if step["verdict"] != "too few"]
    assert [(step["weight"], step["verdict"]) for step in judged] == [(50, "healthy"), (100, "healthy")]
    assert all(step["canary"]["sagas"]["ended"] >= 3 and step["canary"]["sagas"]["unavailable"] == {}
               for step in judged)
    assert all(step["canary"]["requests"]["total"] == 0 for step in result["steps"])  # no sidecars here


def test_a_canary_whose_payment_is_unavailable_is_rolled_back_at_the_first_step(canary_shop, prometheus, istio_dir):
    shop, v2_port = canary_shop
    with grpc.insecure_channel(f"127.0.0.1:{v2_port}") as channel:
        faults = faults_pb2_grpc.FaultServiceStub(channel)
        faults.AddFault(faults_pb2.FaultRule(method="Charge", error="UNAVAILABLE", rate=1.0), timeout=5,
                        metadata=shop.signed)
        try:
            done = canary_run(shop, prometheus, istio_dir)
        finally:
            faults.ClearFaults(common_pb2.Empty(), timeout=5, metadata=shop.signed)

    assert done.returncode == 1, done.stdout + done.stderr
    assert canary.file_weights("payment", istio_dir) == (100, 0)
    assert "rolled back: payment v1 100 / v2 0" in done.stdout
    reason = next(line for line in done.stdout.splitlines() if line.startswith("reason: unavailable rate"))
    assert "(payment_unavailable" in reason and "stable 0.0%, limit 5.0%" in reason, done.stdout
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(("50%", "100%"))]
    assert [row[0] for row in rows] == ["50%"] * len(rows) and rows[-1][-1] == "unhealthy"
