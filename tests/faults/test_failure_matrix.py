"""Each saga step x each way it can fail: the order's outcome, and nothing lost or done twice.

| fault                       | outcome                                                  |
| --------------------------- | -------------------------------------------------------- |
| business refusal            | REJECTED with the step's reason, everything undone       |
| transient error, then fine  | APPROVED after retries                                   |
| outage past the deadline    | REJECTED `<service>_unavailable`, everything undone       |
| reply lost after commit     | APPROVED, the effect done once                           |
| orchestrator killed before, | APPROVED once another run resumes the saga from its log, |
| during or after the call    | the effect done once                                     |
"""

import os
import signal
import time
import uuid

import pytest

STEPS = {  # saga step: (service, its method)
    "reserve_stock": ("inventory", "ReserveStock"),
    "charge_payment": ("payment", "Charge"),
    "commit_stock": ("inventory", "CommitStock"),
    "create_shipment": ("shipping", "CreateShipment"),
}
REFUSALS = {  # how a customer's order makes each step refuse, and the reason
    "reserve_stock": ({"quantity": 99}, "out_of_stock"),
    "charge_payment": ({"token": "tok_declined"}, "payment_declined"),
    "create_shipment": ({"country": "AQ"}, "shipping_rejected"),
}  # (a commit is refused only when its reservation expired: test_reservations.py)
FAULTS = ["refusal", "transient", "outage", "reply_lost", "killed_before", "killed_during", "killed_after"]
STOCK, QUANTITY = 10, 2


def order_body(shop, sku: str, step: str, refuse: bool) -> dict:
    change = REFUSALS[step][0] if refuse else {}
    quantity = change.get("quantity", QUANTITY)
    return shop.order_body({sku: quantity}, token=change.get("token", "tok_ok"), country=change.get("country", "FR"))


def place(shop, sku: str, step: str, *, refuse: bool = False) -> dict:
    order = shop.place_until_answered(order_body(shop, sku, step, refuse), shop.customer(), uuid.uuid4().hex)
    return shop.settled(order["id"])


def kill_orchestrator_during(shop, service: str, method: str, sku: str, step: str) -> dict:
    """The call is slowed down on the service's side; the orchestrator is killed while it waits for it."""
    shop.add_fault(service=service, method=method, delay_ms=3_000, count=1)
    user, key = shop.customer(), uuid.uuid4().hex
    first = shop.place_until_answered(order_body(shop, sku, step, False), user, key)
    time.sleep(1.0)
    victim = shop.part("orchestrator")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    return shop.settled(first["id"])


@pytest.mark.parametrize(("step", "fault"), [(step, fault) for fault in FAULTS for step in STEPS
                                             if fault != "refusal" or step in REFUSALS])
def test_failure_matrix(faulty, step, fault):
    shop, (service, method) = faulty, STEPS[step]
    sku = shop.product(stock=STOCK)
    if fault == "refusal":
        order = place(shop, sku, step, refuse=True)
    elif fault == "transient":
        shop.add_fault(service=service, method=method, error="UNAVAILABLE", count=2)
        order = place(shop, sku, step)
    elif fault == "outage":
        shop.add_fault(service=service, method=method, error="UNAVAILABLE")
        order = place(shop, sku, step)
    elif fault == "reply_lost":
        shop.add_fault(service=service, method=method, error="UNAVAILABLE", after_commit=True, count=1)
        order = place(shop, sku, step)
    elif fault == "killed_during":
        order = kill_orchestrator_during(shop, service, method, sku, step)
    else:
        shop.add_fault(service="orchestrator", method=step, crash=fault.removeprefix("killed_"), count=1)
        order = place(shop, sku, step)

    expected = {"outage": ("REJECTED", f"{service}_unavailable"),
                "refusal": ("REJECTED", REFUSALS.get(step, ({}, ""))[1])}
    assert (order["status"], order["failure_reason"]) == expected.get(fault, ("APPROVED", None))
    shop.assert_conserved(order, sku, QUANTITY, STOCK)
    executed = [s for s in shop.saga(order["id"])["steps"] if (s["name"], s["action"]) == (step, "execute")]
    assert executed[0]["attempts"] >= (3 if fault == "transient" else 1)
