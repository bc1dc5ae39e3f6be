"""`sagashop canary run`: progressive delivery of one part's v2, judged step by step.

Each step sets the canary weight, waits an interval, and compares the canary's figures (v2) with the stable ones
(v1) over the step's window, from the moment its weight was set to now (analysis.py says which figures, window.py
how they are counted). A step with too few canary sagas or requests is watched for up to `extra_intervals` more
intervals, then given up. The first unhealthy step rolls back (weight 0), and so do SIGINT, SIGTERM and SIGHUP and,
with `apply`, a canary Deployment without ready pods; when every step was healthy, the canary is promoted (weight
100). The run lasts at most steps x (1 + extra_intervals) x interval, plus bounded calls.
"""

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .analysis import HEALTHY, TOO_FEW, Figures, Limits, Verdict, judge
from .files import CanaryError, file_of, ready_replicas, shift
from .load import Tally, checkouts
from .window import look, query

QUERY_TIMEOUT = 10.0  # seconds for one Prometheus query
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Plan:
    service: str
    steps: tuple[int, ...]  # canary weights, in percent, rising
    interval: float  # seconds a step runs before it is judged
    prometheus: str  # base URL of Prometheus's HTTP API
    istio_dir: Path
    limits: Limits = Limits()
    extra_intervals: int = 2  # more intervals a step with too few canary sagas or requests is watched for
    apply: bool = False  # shift the cluster's weights too, and check the canary's ready pods every interval
    context: str | None = None
    cluster_only: bool = False  # with apply: the cluster's objects alone, never the files (the in-cluster Job)


@dataclass(frozen=True)
class Load:
    url: str  # the gateway
    rate: float  # orders per second
    sku: str | None = None  # None: the product with the most units available


@dataclass(frozen=True)
class Check:
    """One look at a step: the canary and the stable figures over the step's window (notes say when not)."""

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
    Prometheus, no gateway for the load) leaves the weights alone; one after rolls back. A signal stops the walk at
    once and rolls back; once the run has decided, signals wait for the decision to be carried out."""
    file_of(plan.service, plan.istio_dir)
    outcome = Outcome()
    work = asyncio.ensure_future(steps(plan, load, outcome, on_check, say))
    caught: list[str] = []

    def stop(sig: signal.Signals) -> None:
        if not work.done() and not caught:
            caught.append(sig.name)
            say(f"{sig.name}: stopping the run, rolling {plan.service} back")
            work.cancel()

    with handling(SIGNALS, stop):
        try:
            await work
        except asyncio.CancelledError:
            if not caught:
                raise
            outcome.reasons = [f"stopped by {caught[0]}"]
        outcome.promoted = not outcome.reasons
        if not outcome.promoted or plan.steps[-1] != 100:
            try:
                await move(plan, 100 if outcome.promoted else 0, say)
            except CanaryError as e:
                raise CanaryError(f"could not {'promote' if outcome.promoted else 'roll back'}: {e}") from e
    return outcome


async def steps(plan: Plan, load: Load | None, outcome: Outcome, on_check: Callable[[Check], Any],
                say: Callable[[str], Any]) -> None:
    async with httpx.AsyncClient(timeout=QUERY_TIMEOUT) as prometheus:
        await query(prometheus, plan.prometheus, "vector(1)", time.time())  # it answers, before any weight moves
        async with driving(load) as outcome.load:
            try:
                outcome.reasons = await walk(plan, prometheus, outcome.checks, on_check, say)
            except CanaryError as e:
                outcome.reasons = [str(e)]


async def walk(plan: Plan, prometheus: httpx.AsyncClient, checks: list[Check], on_check: Callable[[Check], Any],
               say: Callable[[str], Any]) -> list[str]:
    """The steps, each judged; the reasons to roll back, or none when every step was healthy."""
    run_start = None
    for weight in plan.steps:
        await move(plan, weight, say)
        step_start = time.time()
        run_start = run_start or step_start
        for _ in range(1 + plan.extra_intervals):
            await asyncio.sleep(plan.interval)
            if plan.apply and not await asyncio.to_thread(ready_replicas, plan.service, plan.context):
                return [f"{plan.service}-v2 has no ready pods"]
            end = time.time()
            canary, stable, notes = await look(prometheus, plan.prometheus, plan.service, run_start, step_start, end,
                                               plan.limits)
            check = Check(weight, end - step_start, canary, stable, judge(canary, stable, plan.limits, notes))
            checks.append(check)
            on_check(check)
            if check.verdict.state != TOO_FEW:
                break
        if check.verdict.state != HEALTHY:
            return check.verdict.reasons
    return []


async def move(plan: Plan, weight: int, say: Callable[[str], Any]) -> None:
    shifting = asyncio.ensure_future(
        asyncio.to_thread(shift, plan.service, weight, plan.istio_dir, plan.apply, plan.context, say,
                          cluster_only=plan.cluster_only))
    try:
        await asyncio.shield(shifting)
    except asyncio.CancelledError:
        with contextlib.suppress(CanaryError):  # the rollback that follows says what the weights are
            await shifting  # a shift under way ends before the rollback's begins, never after
        raise


@contextlib.contextmanager
def handling(signals: tuple[signal.Signals, ...], handler: Callable[[signal.Signals], Any]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, handler, sig)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


@contextlib.asynccontextmanager
async def driving(load: Load | None) -> AsyncIterator[Tally | None]:
    if load is None:
        yield None
        return
    async with checkouts(load.url, load.rate, load.sku) as tally:
        yield tally
