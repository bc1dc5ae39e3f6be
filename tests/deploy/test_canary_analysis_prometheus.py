"""`sagashop canary run`'s analysis against a real Prometheus holding recorded series, queried at fixed times.

The series are written as OpenMetrics, back-filled by `promtool tsdb create-blocks-from openmetrics` into a data
directory of the test's own, and served by one Prometheus for every case. One minute between samples; the
timeline (T = T0 + seconds):
- payment, saga counters by `payment_version`: a run of steps [0, 600] (10 %), [600, 1200] (50 %), [1200, 1800]
  (100 %: no new stable saga). Orchestrator orch-a restarts at 900 (its counters start again from 0); orch-b's
  canary series is born at 720. Then [2400, 3000], a run of its own where the sagas are fine but a third of the
  requests without a pin to payment v2 fail UNAVAILABLE.
- user, Istio request metrics only: v2 healthy over [0, 600], half its requests failing (503 or UNAVAILABLE) and
  slow over [600, 1200]; requests reported by the caller's sidecar (reporter="source") are no concern of the part.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing
from tools.canary import files as canary
from tools.canary.analysis import HEALTHY, UNHEALTHY, Limits, Requests, judge
from tools.canary.window import look
from tools.local.parts import free_port

from .manifests import ROOT

T0 = 1_700_000_400  # a second in the past; every query names its time
SPAN = range(T0 - 600, T0 + 3000 + 1, 60)
LIMITS = Limits(min_sagas=5, min_requests=20)


def per_minute(*pieces: tuple[int, int, int]) -> Callable[[int], int]:
    """(from, to, n): n more in each minute that ends within (T0 + from, T0 + to]."""
    return lambda t: sum(n for start, end, n in pieces if T0 + start < t <= T0 + end)


@dataclass(frozen=True)
class Counter:
    name: str
    labels: dict[str, str]
    grows: Callable[[int], int]  # by how much in the minute that ends at t
    born: int = -600  # its first sample, seconds after T0
    restart: int | None = None  # its process restarted then: it counts from 0 again

    def lines(self) -> Iterator[str]:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        value = 0
        for t in SPAN:
            if t >= T0 + self.born:
                value = (0 if t == T0 + (self.restart or 0) else value) + self.grows(t)
                yield f"{self.name}{{{labels}}} {value} {t}"


def saga(payment: str, instance: str) -> dict[str, str]:
    pins = {f"{part}_version": "v1" for part in ("order", "inventory", "shipping")}
    return {"saga": "checkout", "outcome": "succeeded", "instance": instance, **pins, "payment_version": payment}


def istio(app: str, version: str, code: str = "200", grpc: str = "0", reporter: str = "destination") -> dict[str, str]:
    return {"reporter": reporter, "destination_workload_namespace": "sagashop", "destination_app": app,
            "destination_version": version, "response_code": code, "grpc_response_status": grpc}


def bucket(app: str, version: str, le: str) -> dict[str, str]:
    return {**{k: v for k, v in istio(app, version).items() if "response" not in k}, "le": le}


SAGAS, REQUESTS, DURATIONS = ("sagashop_saga_completed_total", "istio_requests_total",
                              "istio_request_duration_milliseconds_bucket")
SERIES = [
    Counter(SAGAS, saga("v1", "orch-a"), per_minute((-600, 1200, 2), (2400, 3000, 2)), restart=900),
    Counter(SAGAS, saga("v2", "orch-a"), per_minute((0, 1800, 1), (2400, 3000, 1)), restart=900),
    Counter(SAGAS, saga("v2", "orch-b"), per_minute((660, 1800, 1), (2400, 3000, 1)), born=720),
    Counter(REQUESTS, istio("payment", "v1"), per_minute((2400, 3000, 30))),
    Counter(REQUESTS, istio("payment", "v2"), per_minute((2400, 3000, 20))),
    Counter(REQUESTS, istio("payment", "v2", grpc="14"), per_minute((2400, 3000, 10))),
    Counter(REQUESTS, istio("user", "v1"), per_minute((-600, 1200, 60))),
    Counter(REQUESTS, istio("user", "v2"), per_minute((0, 1200, 20))),
    Counter(REQUESTS, istio("user", "v2", code="404"), per_minute((0, 600, 5))),  # a client's error, not v2's
    Counter(REQUESTS, istio("user", "v2", code="503", grpc=""), per_minute((600, 1200, 10))),
    Counter(REQUESTS, istio("user", "v2", grpc="14"), per_minute((600, 1200, 10))),
    Counter(REQUESTS, istio("user", "v2", code="503", reporter="source"), per_minute((0, 600, 50))),
    *(Counter(DURATIONS, bucket("user", "v1", le), per_minute((-600, 1200, 60)))
      for le in ("10", "100", "500", "+Inf")),
    *(Counter(DURATIONS, bucket("user", "v2", le), per_minute((0, 600, 25), (600, 1200, n)))
      for le, n in (("10", 20), ("100", 20), ("500", 40), ("+Inf", 40))),
]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prometheus (a free port) over the back-filled series; its URL."""
    binaries = [shutil.which("prometheus"), shutil.which("promtool")]
    if None in binaries:
        missing("no `prometheus` or `promtool` on PATH", "`make prometheus` installs Debian's package (as root)")
    prometheus_binary, promtool = (str(b) for b in binaries)
    tmp, port = tmp_path_factory.mktemp("prometheus"), free_port()
    (tmp / "series.om").write_text("".join(f"{line}\n" for s in SERIES for line in s.lines()) + "# EOF\n")
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(tmp / "series.om"), str(tmp / "data")],
                   check=True, capture_output=True, timeout=60)
    (tmp / "prometheus.yml").write_text("global: {}\n")
    process = subprocess.Popen([prometheus_binary, f"--config.file={tmp / 'prometheus.yml'}",
                                f"--storage.tsdb.path={tmp / 'data'}", "--storage.tsdb.retention.time=100y",
                                f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=(tmp / "prometheus.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not ready(url):
            assert time.monotonic() < deadline and process.poll() is None, (tmp / "prometheus.log").read_text()[-3000:]
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def judged(prometheus: str, part: str, run_start: int, step_start: int, end: int):
    async with httpx.AsyncClient(timeout=10) as client:
        canary, stable, notes = await look(client, prometheus, part, T0 + run_start, T0 + step_start, T0 + end, LIMITS)
    return canary, stable, judge(canary, stable, LIMITS, notes)


async def test_the_stable_baseline_counts_across_a_restart_and_a_series_born_in_the_step(prometheus):
    canary, stable, verdict = await judged(prometheus, "payment", 0, 600, 1200)

    assert stable.sagas.ended == 20  # orch-a: 2 a minute for 10 minutes, its restart at 900 counted right
    assert canary.sagas.ended == 19  # orch-a: 10 (restart too); orch-b born at 720 with 1: 9, the first one counted
    assert verdict.state == HEALTHY
    assert not any("since the run began" in note for note in verdict.notes)


async def test_at_weight_100_the_stable_sagas_come_from_the_whole_run_and_the_notes_say_so(prometheus):
    canary, stable, verdict = await judged(prometheus, "payment", 0, 1200, 1800)

    assert (canary.sagas.ended, stable.sagas.ended) == (20, 40)  # no stable saga in the step; 40 since the run began
    assert verdict.state == HEALTHY
    assert "stable sagas counted since the run began: fewer than 5 in the step" in verdict.notes


async def test_a_user_canary_is_judged_on_its_requests_alone(prometheus):
    canary, stable, verdict = await judged(prometheus, "user", 0, 0, 600)

    assert canary.sagas is None and stable.sagas is None
    assert (canary.requests.total, canary.requests.failed, stable.requests.total) == (250, 0, 600)
    assert canary.requests.p99 == stable.requests.p99 == pytest.approx(9.9)
    assert verdict.state == HEALTHY


async def test_a_user_canary_failing_and_slow_is_unhealthy(prometheus):
    canary, stable, verdict = await judged(prometheus, "user", 0, 600, 1200)

    assert canary.requests == Requests(400, 200, pytest.approx(492.0))
    assert verdict.state == UNHEALTHY
    assert verdict.reasons == [
        "request error rate: canary 50.0% (200 of 400), stable 0.0%, limit stable + 1.0 points",
        "p99 request latency: canary 492ms, stable 10ms, limit 1.5 x stable (judged above 100ms)"]


async def test_payment_v2_failing_requests_without_a_pin_is_unhealthy_while_its_sagas_are_fine(prometheus):
    canary, stable, verdict = await judged(prometheus, "payment", 2400, 2400, 3000)

    assert (canary.sagas.ended, canary.sagas.compensated, stable.sagas.ended) == (20, 0, 20)
    assert verdict.state == UNHEALTHY
    assert verdict.reasons == ["request error rate: canary 33.3% (100 of 300), stable 0.0%, limit stable + 1.0 points"]


@pytest.fixture
def istio_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ROOT / "istio", tmp_path / "istio"))


def start_run(prometheus: str, istio_dir: Path, *options: str, env: dict[str, str] | None = None):
    """`sagashop canary run payment` at its first step (weight 10), whose interval outlasts the test."""
    command = [sys.executable, "-m", "tools.cli", "canary", "run", "payment", "--steps", "10,100", "--interval",
               "60s", "--prometheus", prometheus, "--dir", str(istio_dir), *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 30
    while canary.file_weights("payment", istio_dir) != (90, 10):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate(timeout=10)[0]
        time.sleep(0.05)
    return process


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_run_at_once_and_rolls_back(prometheus, istio_dir, sig):
    process = start_run(prometheus, istio_dir)
    process.send_signal(sig)
    output = process.communicate(timeout=15)[0]

    assert process.returncode == 1, output
    assert canary.file_weights("payment", istio_dir) == (100, 0)
    assert f"reason: stopped by {sig.name}" in output


def test_a_canary_that_loses_its_ready_pods_is_rolled_back(prometheus, istio_dir, tmp_path):
    """With --apply, a kubectl of the test's own: payment-v2 is ready while the file `ready` exists; the live
    VirtualService is the file's, and patches are taken."""
    (tmp_path / "bin").mkdir()
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.write_text(f"""#!{sys.executable}
import json, sys
from pathlib import Path
from ruamel.yaml import YAML
asked = " ".join(sys.argv[1:])
if "get deployment payment-v2" in asked:
    print(json.dumps({{"status": {{"readyReplicas": 1}} if Path("{tmp_path}/ready").exists() else {{}}}}))
elif "get virtualservice payment" in asked:
    docs = YAML(typ="safe").load_all(Path("{istio_dir}/payment.yaml").read_text())
    print(json.dumps(next(d for d in docs if d and d["kind"] == "VirtualService")))
else:
    print("{{}}")
""")
    kubectl.chmod(0o755)
    (tmp_path / "ready").touch()
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    process = start_run(prometheus, istio_dir, "--apply", "--interval", "2s", env=env)
    (tmp_path / "ready").unlink()
    output = process.communicate(timeout=30)[0]

    assert process.returncode == 1, output
    assert canary.file_weights("payment", istio_dir) == (100, 0)
    assert "reason: payment-v2 has no ready pods" in output
