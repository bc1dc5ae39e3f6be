import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.shop import Shop

CAMPAIGN_WITHIN = 270.0  # under the suite's 300 s per test: a campaign still running then fails with what it said


@pytest.fixture
def faulty(shop: Shop) -> Iterator[Shop]:
    """The shared shop, its fault rules cleared again after the test (whatever it broke)."""
    yield shop
    shop.ready_again()
    shop.clear_faults()


def chaos(shop: Shop, *options: str) -> subprocess.CompletedProcess[str]:
    """`sagashop chaos` against the shop as a user runs it. One still running after CAMPAIGN_WITHIN seconds is
    interrupted (it stops its replicas and clears its faults, as on Ctrl-C) and the test fails with what it printed
    and the end of the shop's log: where it stood."""
    command = [sys.executable, "-m", "tools.cli", "chaos", "--url", shop.url, *options]
    with subprocess.Popen(command, env=shop.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
        try:
            out, err = run.communicate(timeout=CAMPAIGN_WITHIN)
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGINT)
            try:
                out, err = run.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                run.kill()
                out, err = run.communicate()
            pytest.fail(f"the campaign ran past {CAMPAIGN_WITHIN:g} s; it printed:\n{out[-3000:]}{err[-3000:]}\n"
                        f"the end of the shop's log:\n{shop.log.read_text(errors='replace')[-8000:]}")
    return subprocess.CompletedProcess(command, run.returncode, out, err)
