"""The README's curl walk-through works as written (against the test shop's port instead of 8080)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def curl_walkthrough() -> str:
    text = README.read_text()
    section = text[text.index("## A whole checkout with curl"):]
    return re.findall(r"```sh\n(.*?)```", section, re.S)[0]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_walkthrough_places_an_approved_order(shop):
    script = curl_walkthrough().replace("localhost:8080", shop.url.removeprefix("http://"))
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)

    assert run.returncode == 0, run.stderr
    assert '"status":"APPROVED"' in run.stdout
    assert '"payment":{"status":"CHARGED"' in run.stdout
