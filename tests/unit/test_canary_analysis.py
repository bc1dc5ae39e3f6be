"""How `canary run` counts and judges a step, on answers recorded from a real Prometheus (canary_prometheus.json says
how) and on figures made up for each rule."""

import json
from pathlib import Path

import pytest

from tools.canary.analysis import (
    CANARY,
    HEALTHY,
    STABLE,
    TOO_FEW,
    UNHEALTHY,
    Figures,
    Limits,
    Requests,
    Sagas,
    Verdict,
    judge,
    quantile,
    requests,
    sagas,
)
from tools.canary.window import growth

RECORDED = json.loads((Path(__file__).parent / "canary_prometheus.json").read_text())


def answer(name: str, key: str) -> list:
    return RECORDED[name][key]["data"]["result"]


PAYMENT = growth(answer("payment_step", "start"), answer("payment_step", "window"))
USER = growth(answer("user_step", "start"), answer("user_step", "window"))


def test_a_series_counts_across_its_process_restart_and_from_zero_when_born_in_the_window():
    by_instance = {(dict(k)["instance"], dict(k)["payment_version"]): v for k, v in PAYMENT.items()}
    # orch-a restarted at T0+900 (2 and 1 a minute); orch-b's canary series was born at T0+720 holding 1 saga
    assert by_instance == {("orch-a", "v1"): 20, ("orch-a", "v2"): 10, ("orch-b", "v2"): 9}
    assert (sagas(PAYMENT, "payment", CANARY).ended, sagas(PAYMENT, "payment", STABLE).ended) == (19, 20)


def test_another_part_s_pins_do_not_split_the_sagas():
    assert sagas(PAYMENT, "order", CANARY).ended == 0 and sagas(PAYMENT, "order", STABLE).ended == 39


def test_request_failures_count_5xx_answers_and_failing_grpc_statuses():
    canary, stable = requests(USER, CANARY), requests(USER, STABLE)
    assert (canary.total, canary.failed, stable.total, stable.failed) == (400, 200, 600, 0)  # 100 x 503, 100 x 14


@pytest.mark.parametrize("version", [STABLE, CANARY])
def test_p99_is_what_prometheus_histogram_quantile_answers(version):
    answered = float(RECORDED["user_end_p99"][version]["data"]["result"][0]["value"][1])
    at_end = {frozenset(item["metric"].items()): float(item["value"][1]) for item in answer("user_step", "end")}
    assert requests(at_end, version).p99 == pytest.approx(answered, rel=1e-9)


def test_quantile_of_no_observations_is_none_and_beyond_the_last_bucket_is_its_bound():
    assert quantile(0.99, {}) is None and quantile(0.99, {0.1: 0, float("inf"): 0}) is None
    assert quantile(0.99, {0.1: 0, 0.5: 1, float("inf"): 10}) == 0.5


ENOUGH = Requests(total=100, p99=5.0)


def part(sagas_: Sagas | None, requests_: Requests = ENOUGH) -> Figures:
    return Figures(sagas_, requests_)


def test_the_unavailable_canary_of_a_saga_part_is_unhealthy_on_each_saga_limit():
    canary = part(Sagas(ended=12, compensated=12, unavailable={"payment_unavailable": 12}, p99=1.2))
    verdict = judge(canary, part(Sagas(ended=41, p99=0.05)), Limits(min_sagas=10))
    assert verdict.state == UNHEALTHY
    assert verdict.reasons == [
        "unavailable rate: canary 100.0% (payment_unavailable 12), stable 0.0%, limit 5.0%",
        "compensation rate: canary 100.0%, stable 0.0%, limit stable + 5.0 points",
        "p99 step latency: canary 1.200s, stable 0.050s, limit 1.5 x stable (judged above 0.25s)"]


def test_too_few_canary_sagas_are_never_judged_healthy_even_with_enough_requests():
    verdict = judge(part(Sagas(ended=19)), part(Sagas(ended=15)), Limits(min_sagas=20))
    assert (verdict.state, verdict.reasons) == (
        TOO_FEW, ["too few canary sagas: 19 ended (stable 15), at least 20 needed to judge"])


def test_failing_requests_roll_a_saga_part_back_before_its_sagas_are_enough():
    verdict = judge(part(Sagas(ended=2), Requests(100, 10)), part(Sagas(ended=40)), Limits())
    assert (verdict.state, verdict.reasons) == (
        UNHEALTHY, ["request error rate: canary 10.0% (10 of 100), stable 0.0%, limit stable + 1.0 points"])


def test_a_saga_part_without_request_metrics_is_judged_on_its_sagas_and_says_so():
    verdict = judge(part(Sagas(ended=30, p99=0.1), Requests()), part(Sagas(ended=30, p99=0.1), Requests()), Limits())
    assert verdict == Verdict(HEALTHY, [], [
        "no Istio request metrics on either version: does Prometheus scrape the sidecars?",
        "requests not judged: too few canary requests: 0 (stable 0), at least 50 needed to judge"])


def test_a_part_no_saga_splits_is_judged_on_its_requests_alone():
    assert judge(part(None), part(None), Limits()) == Verdict(HEALTHY, [], [])
    verdict = judge(part(None, Requests(49)), part(None), Limits())
    assert (verdict.state, verdict.reasons) == (
        TOO_FEW, ["too few canary requests: 49 (stable 100), at least 50 needed to judge"])


def test_the_request_error_rate_may_exceed_stable_s_by_the_allowed_points():
    stable = part(None, Requests(1000, 20, 5.0))
    assert judge(part(None, Requests(100, 3, 5.0)), stable, Limits()).state == HEALTHY  # 3 % against 2 %
    assert judge(part(None, Requests(100, 4, 5.0)), stable, Limits()).state == UNHEALTHY


def test_slower_canaries_are_judged_only_above_the_floors():
    stable = part(Sagas(ended=100, p99=0.02), Requests(100, p99=20.0))
    assert judge(part(Sagas(ended=100, p99=0.2), Requests(100, p99=90.0)), stable, Limits()).state == HEALTHY
    slow = judge(part(Sagas(ended=100, p99=0.4), Requests(100, p99=150.0)), stable, Limits())
    assert slow.reasons == ["p99 step latency: canary 0.400s, stable 0.020s, limit 1.5 x stable (judged above 0.25s)",
                            "p99 request latency: canary 150ms, stable 20ms, limit 1.5 x stable (judged above 100ms)"]


def test_parked_canary_sagas_roll_back_however_few_ended():
    verdict = judge(part(Sagas(ended=2, parked=1)), part(Sagas(ended=40)), Limits())
    assert (verdict.state, verdict.reasons) == (UNHEALTHY, ["parked sagas: canary 1, stable 0, limit 0"])


def test_without_stable_figures_the_canary_is_compared_with_zero_and_says_so():
    verdict = judge(part(Sagas(ended=30, compensated=1, p99=0.1)), part(Sagas(), Requests()), Limits(),
                    ["stable sagas counted since the run began: fewer than 20 in the step"])
    assert verdict.state == HEALTHY
    assert verdict.notes == ["stable sagas counted since the run began: fewer than 20 in the step",
                             "no stable sagas: the compensation rate is compared with 0%",
                             "p99 step latency not compared: no step timings on the stable version",
                             "no stable requests: the request error rate is compared with 0%",
                             "p99 request latency not compared: no request timings on the stable version"]
