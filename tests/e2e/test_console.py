"""The saga console in a real browser (headless Chromium through Playwright): an administrator signs in, finds a
saga, reads its timeline and its order's events and acts on a parked one, all under the gateway's content security
policy."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing
from tests.e2e.test_events_api import eventually

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: `make browser` installs it
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing", "`make browser` installs Debian's chromium (as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def console(shop, browser) -> Iterator[object]:
    """A page of the console, signed in as the administrator; it fails the test on any error the page logs (a
    script or style the security policy refused, a script error)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{shop.url}/console")
    page.fill("#email", shop.env["SAGASHOP_ADMIN_EMAIL"])
    page.fill("#password", shop.env["SAGASHOP_ADMIN_PASSWORD"])
    page.click("form#login button[type=submit]")
    page.wait_for_selector("#logout")  # signed in
    yield page
    page.close()
    assert errors == []


def test_an_admin_signs_in_finds_a_saga_and_reads_its_timeline(shop, console, tmp_path):
    order = shop.place_order({shop.product(stock=2): 1}, country="AQ")
    console.goto(f"{shop.url}/console?state=COMPENSATED")
    console.click(f"table.sagas a[href='/console/sagas/{order['id']}']")
    console.wait_for_selector("#timeline table.steps")

    rows = [row.split("\t")[:3] for row in console.inner_text("#timeline table.steps tbody").splitlines()]
    assert rows[3:7] == [["commit_stock", "execute", "SUCCEEDED"], ["create_shipment", "execute", "FAILED"],
                         ["create_shipment", "compensate", "SUCCEEDED"], ["charge_payment", "compensate", "SUCCEEDED"]]
    assert order["id"] in console.inner_text("h1")
    assert "shipping_rejected" in console.inner_text("#timeline .facts")
    console.wait_for_selector("#events table.events")  # the order's domain events, beside its saga
    assert "order.rejected" in eventually(lambda: console.inner_text("#events"), lambda text: "order.rejected" in text)
    shot = console.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 20_000


def test_the_console_shows_breakers_and_fault_rules_and_retries_a_parked_saga(shop, console):
    sku = shop.product(stock=5)
    shop.add_fault(service="inventory", method="ReleaseStock", error="INTERNAL")
    try:
        placed = shop.http.post("/v1/orders", json=shop.order_body({sku: 1}, token="tok_declined"),
                                headers={**shop.customer(), "Prefer": "wait=0"}).json()
        parked = wait_for_saga(shop, placed["id"], "NEEDS_ATTENTION")
        console.reload()
        assert "ReleaseStock" in console.inner_text("table.faults")
        assert "orchestrator" in console.inner_text("table.breakers")
    finally:
        shop.clear_faults()

    console.goto(f"{shop.url}/console/sagas/{parked['saga_id']}")
    console.fill("#reason", "inventory fixed")
    console.click("button[data-action=retry]")
    console.wait_for_selector("#timeline .facts .state.compensated")
    assert "inventory fixed" in console.inner_text("#timeline table.audit")


def wait_for_saga(shop, order_id: str, state: str, within: float = 60) -> dict:
    deadline = time.monotonic() + within
    while (saga := shop.saga(order_id))["state"] != state:
        assert time.monotonic() < deadline, f"saga of {order_id} is {saga['state']}, not {state}"
        time.sleep(0.3)
    return saga
