"""`sagashop canary run`: progressive delivery of one part's v2, judged step by step on the sagas' outcomes.

Each step sets the canary weight, waits an interval, and compares the canary sagas (route v2) that ended since the
step began with every stable saga (route v1) since the run began: a baseline that still holds figures at 100 %,
when no new saga is stable any more. A step with too few canary sagas is watched for up to `extra_intervals` more
intervals, then given up. The first unhealthy step rolls back (weight 0); when every step was healthy, the canary is
promoted (weight 100). The run lasts at most steps x (1 + extra_intervals) x interval, plus bounded calls.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from . import analysis
from .analysis import Figures, Limits, Series, Verdict, figures, grown, judge, snapshot
from .files import CanaryError, file_of, shift
from .load import Tally, checkouts

QUERY_TIMEOUT = 10.0  # seconds for one Prometheus query


@dataclass(frozen=True)
class Plan:
    service: str
    steps: tuple[int, ...]  # canary weights, in percent, rising
    interval: float  # seconds a step runs before it is judged
    prometheus: str  # base URL of Prometheus's HTTP API
    istio_dir: Path
    limits: Limits = Limits()
    extra_intervals: int = 2  # more intervals a step with too few canary sagas is watched for
    apply: bool = False  # kubectl apply the file and set the orchestrators' SAGASHOP_CANARY_PERCENT too
    context: str | None = None


@dataclass(frozen=True)
class Load:
    url: str  # the gateway
    rate: float  # orders per second
    sku: str | None = None  # None: the product with the most units available


@dataclass(frozen=True)
class Check:
    """One look at a step: the canary since the step began, the stable route since the run began."""

    weight: int
    seconds: float
    canary: Figures
    stable: Figures
    verdict: Verdict


@dataclass
class Outcome:
    promoted: bool = False
    reasons: list[str] = field(default_factory=list)  # why it was rolled back
    checks: list[Check] = field(default_factory=list)
    load: Tally | None = None


async def run(plan: Plan, load: Load | None, on_check: Callable[[Check], Any], say: Callable[[str], Any]) -> Outcome:
    """Walks the steps, then promotes or rolls back. A CanaryError before the first step (unknown service, no
    Prometheus, no gateway for the load) leaves the weights alone; one after rolls back."""
    file_of(plan.service, plan.istio_dir)
    outcome = Outcome()
    async with httpx.AsyncClient(timeout=QUERY_TIMEOUT) as prometheus:
        baseline = await snapshot(prometheus, plan.prometheus)
        async with driving(load) as outcome.load:
            try:
                outcome.reasons = await walk(plan, prometheus, baseline, outcome.checks, on_check, say)
            except CanaryError as e:
                outcome.reasons = [str(e)]
    outcome.promoted = not outcome.reasons
    if not outcome.promoted or plan.steps[-1] != 100:
        try:
            await move(plan, 100 if outcome.promoted else 0, say)
        except CanaryError as e:
            raise CanaryError(f"could not {'promote' if outcome.promoted else 'roll back'}: {e}") from e
    return outcome


async def walk(plan: Plan, prometheus: httpx.AsyncClient, baseline: Series, checks: list[Check],
               on_check: Callable[[Check], Any], say: Callable[[str], Any]) -> list[str]:
    """The steps, each judged; the reasons to roll back, or none when every step was healthy."""
    for weight in plan.steps:
        await move(plan, weight, say)
        start, began = await snapshot(prometheus, plan.prometheus), time.monotonic()
        for _ in range(1 + plan.extra_intervals):
            await asyncio.sleep(plan.interval)
            now = await snapshot(prometheus, plan.prometheus)
            canary, stable = figures(grown(start, now), analysis.CANARY), figures(grown(baseline, now), analysis.STABLE)
            check = Check(weight, time.monotonic() - began, canary, stable, judge(canary, stable, plan.limits))
            checks.append(check)
            on_check(check)
            if check.verdict.state != analysis.TOO_FEW:
                break
        if check.verdict.state != analysis.HEALTHY:
            return check.verdict.reasons
    return []


async def move(plan: Plan, weight: int, say: Callable[[str], Any]) -> None:
    await asyncio.to_thread(shift, plan.service, weight, plan.istio_dir, plan.apply, plan.context, say)


@contextlib.asynccontextmanager
async def driving(load: Load | None) -> AsyncIterator[Tally | None]:
    if load is None:
        yield None
        return
    async with checkouts(load.url, load.rate, load.sku) as tally:
        yield tally
