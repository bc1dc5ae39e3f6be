"""`sagashop demo` against a running shop: each of its orders ends as its title says, with the saga's steps."""

import subprocess
import sys

from tools.local.parts import free_port


def test_the_demo_shows_the_happy_path_and_each_compensation_path(shop):
    demo = subprocess.run([sys.executable, "-m", "tools.cli", "demo", "--url", shop.url], env=shop.env,
                          capture_output=True, text=True, timeout=120)

    assert demo.returncode == 0, demo.stdout + demo.stderr
    titles = [line for line in demo.stdout.splitlines() if line.startswith("== ")]
    assert [line.split(": order ")[0] for line in titles] == [
        "== happy path", "== payment declined", "== shipping rejected (AQ)", "== out of stock"]
    assert [line.split(": order ")[1].split(", payment")[0].split(" ", 1)[1] for line in titles] == [
        "APPROVED", "REJECTED (payment_declined)", "REJECTED (shipping_rejected)", "REJECTED (out_of_stock)"]
    assert "<- charge_payment" in demo.stdout  # the shipping rejection refunded the charge


def test_the_demo_says_when_no_shop_answers():
    demo = subprocess.run([sys.executable, "-m", "tools.cli", "demo", "--url", f"http://127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, timeout=60)

    assert demo.returncode == 1 and "no shop answers at" in demo.stderr
