"""How `canary run` judges a step, on answers recorded from a real Prometheus (canary_prometheus.json says how)."""

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
    Verdict,
    figures,
    grown,
    judge,
    quantile,
    series_of,
)

RECORDED = json.loads((Path(__file__).parent / "canary_prometheus.json").read_text())
START, HEALTHY_RUN, BROKEN_RUN = (series_of(RECORDED[name]) for name in ("start", "healthy", "broken"))


def test_the_broken_payment_canary_is_unhealthy_for_its_unavailable_rate_against_the_stable_baseline():
    canary, stable = figures(grown(HEALTHY_RUN, BROKEN_RUN), CANARY), figures(grown(START, BROKEN_RUN), STABLE)

    assert (canary.ended, canary.compensated, canary.unavailable) == (12, 12, {"payment_unavailable": 12})
    assert (stable.ended, stable.compensated, stable.parked) == (41, 0, 0)
    verdict = judge(canary, stable, Limits(min_sagas=10))
    assert verdict.state == UNHEALTHY
    assert verdict.reasons[0] == ("unavailable rate: canary 100.0% (payment_unavailable 12), stable 0.0%, "
                                  "limit 5.0%")
    assert [reason.split(":")[0] for reason in verdict.reasons] == [
        "unavailable rate", "compensation rate", "p99 step latency"]


def test_the_healthy_canary_passes_every_check():
    canary, stable = figures(grown(START, HEALTHY_RUN), CANARY), figures(grown(START, HEALTHY_RUN), STABLE)

    assert (canary.ended, canary.compensated, stable.ended, stable.compensated) == (19, 0, 15, 0)
    assert judge(canary, stable, Limits(min_sagas=19)) == Verdict(HEALTHY, [], [])


def test_too_few_canary_sagas_are_never_judged_healthy():
    canary, stable = figures(grown(START, HEALTHY_RUN), CANARY), figures(grown(START, HEALTHY_RUN), STABLE)

    verdict = judge(canary, stable, Limits(min_sagas=20))
    assert (verdict.state, verdict.reasons) == (
        TOO_FEW, ["too few canary sagas: 19 ended (stable 15), at least 20 needed to judge"])


@pytest.mark.parametrize("route", [STABLE, CANARY])
def test_p99_is_what_prometheus_histogram_quantile_answers(route):
    answered = float(RECORDED["broken_p99"][route]["data"]["result"][0]["value"][1])
    assert figures(BROKEN_RUN, route).p99 == pytest.approx(answered, rel=1e-9)


def test_a_series_born_in_the_window_counts_from_zero_and_so_does_one_whose_orchestrator_restarted():
    key = next(k for k in BROKEN_RUN if dict(k).get("failure_reason") == "payment_unavailable")
    assert key not in HEALTHY_RUN  # the canary's first unavailable saga made the series
    restarted = {**HEALTHY_RUN, key: 50.0}  # before the window: 50; after a restart, counting anew

    assert grown(HEALTHY_RUN, BROKEN_RUN)[key] == BROKEN_RUN[key] == 12
    assert grown(restarted, BROKEN_RUN)[key] == 12


def test_parked_canary_sagas_roll_back_however_few_ended():
    verdict = judge(Figures(ended=2, parked=1), Figures(ended=40), Limits())
    assert (verdict.state, verdict.reasons) == (UNHEALTHY, ["parked sagas: canary 1, stable 0, limit 0"])


def test_a_slower_canary_is_judged_only_above_the_p99_floor():
    stable = Figures(ended=100, p99=0.02)
    assert judge(Figures(ended=100, p99=0.2), stable, Limits()).state == HEALTHY  # 10 x, but under 0.25 s
    slow = judge(Figures(ended=100, p99=0.4), stable, Limits())
    assert slow.reasons == ["p99 step latency: canary 0.400s, stable 0.020s, limit 1.5 x stable (judged above 0.25s)"]


def test_without_stable_sagas_the_canary_is_compared_with_zero_and_says_so():
    verdict = judge(Figures(ended=30, compensated=1, p99=0.1), Figures(), Limits())
    assert verdict.state == HEALTHY
    assert verdict.notes == ["no stable sagas: the compensation rate is compared with 0%",
                             "p99 step latency not compared: no step timings on the stable route"]


def test_quantile_of_no_observations_is_none_and_beyond_the_last_bucket_is_its_bound():
    assert quantile(0.99, {}) is None and quantile(0.99, {0.1: 0, float("inf"): 0}) is None
    assert quantile(0.99, {0.1: 0, 0.5: 1, float("inf"): 10}) == 0.5
