"""The chaos campaign faults every step, undo and rejection step of both order sagas, read from the sagas as the
orchestrator defines them: the orchestrator crashes around each of them, and each gRPC call they make fails."""

import importlib
import random

from tools.chaos import faults


def test_the_orchestrator_is_crashed_around_every_step_of_both_sagas_and_their_rejection():
    checkout, cancellation = faults.sagas()
    assert {step.name for step in checkout.steps} == {
        "create_order", "reserve_stock", "charge_payment", "create_shipment", "commit_stock", "approve_order"}
    assert [step.name for step in checkout.on_rejected] == ["create_order", "reject_order"]
    assert cancellation.on_rejected == ()
    assert set(faults.step_names()) == {step.name for saga in (checkout, cancellation) for step in saga.steps} | {
        "reject_order"}
    assert {"create_order", "reject_order", "cancel_shipment", "refund_payment", "release_stock",
            "cancel_order"} <= set(faults.step_names())


def test_every_call_of_the_sagas_steps_undos_and_rejection_is_faulted():
    assert set(faults.targets()) == {
        ("order", "CreateOrder"), ("order", "ApproveOrder"), ("order", "RejectOrder"), ("order", "CancelOrder"),
        ("inventory", "ReserveStock"), ("inventory", "ReleaseStock"), ("inventory", "CommitStock"),
        ("payment", "Charge"), ("payment", "Refund"), ("shipping", "CreateShipment"),
        ("shipping", "CancelShipment")}


def test_each_undo_is_named_for_what_it_calls():
    checkout, _ = faults.sagas()
    undos = {step.name: step.undo.__name__ for step in checkout.steps if step.undo}
    assert undos == {"reserve_stock": "release_stock", "charge_payment": "refund_payment",
                     "create_shipment": "cancel_shipment"}
    assert set(faults.operations()) == set(faults.CALLS)  # nothing in the table that no saga does


def test_every_faulted_method_is_one_its_service_serves():
    for service, method in faults.CALLS.values():
        pb = importlib.import_module(f"sagashop.v1.{service}_pb2")
        served = {m for s in pb.DESCRIPTOR.services_by_name.values() for m in s.methods_by_name}
        assert method in served, f"{service} has no {method}"


def test_random_rules_draw_from_every_target_and_crash_point_in_time():
    rng, targets, steps = random.Random(7), faults.targets(), faults.step_names()
    drawn = {(rule["service"], rule["method"]) for rule in (faults.random_rule(rng, targets) for _ in range(2_000))}
    crashed = {faults.crash_rule(rng, steps)["method"] for _ in range(2_000)}
    assert (drawn, crashed) == (set(targets), set(steps))
