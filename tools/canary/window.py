"""The figures of a window [start, end] from Prometheus, every query evaluated at an explicit time.

Per series, two queries: the selector at `start` (each series' count then) and `SELECTOR[<end - start>]` at `end`
(the raw samples of the window). A series grows by the steps between consecutive samples, a step down (its process
restarted and counts from 0 again) by the new count whole; a series without a count at `start` was born inside the
window and its first sample counts from 0. PromQL's increase() extrapolates and misses that first sample, and a
canary's first `payment_unavailable` saga makes just such a series.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx

from .analysis import (
    CANARY,
    SAGA_SELECTOR,
    STABLE,
    Figures,
    Limits,
    Series,
    request_selector,
    requests,
    sagas,
)
from .files import SAGA_PARTS, CanaryError


async def query(client: httpx.AsyncClient, prometheus: str, promql: str, at: float) -> list[dict[str, Any]]:
    """The result of an instant query evaluated at `at` (Unix seconds)."""
    try:
        reply = await client.get(f"{prometheus.rstrip('/')}/api/v1/query",
                                 params={"query": promql, "time": f"{at:.3f}"})
        body = reply.json()
    except (httpx.HTTPError, ValueError) as e:
        raise CanaryError(f"cannot query Prometheus at {prometheus}: {e!r}") from e
    if body.get("status") != "success":
        raise CanaryError(f"Prometheus at {prometheus} answered {reply.status_code}: {body.get('error', body)}")
    return list(body["data"]["result"])


async def grown(client: httpx.AsyncClient, prometheus: str, selector: str, start: float, end: float) -> Series:
    """What each series of the selector grew by over [start, end]."""
    milliseconds = max(1, round(1000 * (end - start)))
    before, window = await asyncio.gather(query(client, prometheus, selector, start),
                                          query(client, prometheus, f"{selector}[{milliseconds}ms]", end))
    return growth(before, window)


def growth(before: Sequence[Mapping[str, Any]], window: Sequence[Mapping[str, Any]]) -> Series:
    """From the answers of the selector at the window's start (a vector) and of its samples (a matrix)."""
    start = {frozenset(item["metric"].items()): float(item["value"][1]) for item in before}
    grew = {}
    for item in window:
        labels = frozenset(item["metric"].items())
        last, total = start.get(labels, 0.0), 0.0
        for _, sample in item["values"]:
            value = float(sample)
            total += value - last if value >= last else value
            last = value
        grew[labels] = total
    return grew


async def counted(client: httpx.AsyncClient, prometheus: str, part: str, start: float, end: float) -> Series:
    selectors = [request_selector(part), *([SAGA_SELECTOR] if part in SAGA_PARTS else [])]
    found: Series = {}
    for series in await asyncio.gather(*(grown(client, prometheus, s, start, end) for s in selectors)):
        found.update(series)
    return found


def figures(series: Series, part: str, version: str) -> Figures:
    return Figures(sagas(series, part, version) if part in SAGA_PARTS else None, requests(series, version))


async def look(client: httpx.AsyncClient, prometheus: str, part: str, run_start: float, step_start: float,
               end: float, limits: Limits) -> tuple[Figures, Figures, Sequence[str]]:
    """The canary and the stable figures over the step's window, and notes. When the canary has enough sagas (or
    requests) to be judged but the stable side has too few there (at 100 % nothing new is stable), the stable
    figures of that kind come from the whole run."""
    step = await counted(client, prometheus, part, step_start, end)
    canary, stable = figures(step, part, CANARY), figures(step, part, STABLE)
    few_sagas = (canary.sagas is not None and stable.sagas is not None
                 and stable.sagas.ended < limits.min_sagas <= canary.sagas.ended)
    few_requests = stable.requests.total < limits.min_requests <= canary.requests.total
    if run_start >= step_start or not (few_sagas or few_requests):
        return canary, stable, []
    run = figures(await counted(client, prometheus, part, run_start, end), part, STABLE)
    notes = []
    if few_sagas:
        stable = replace(stable, sagas=run.sagas)
        notes.append(f"stable sagas counted since the run began: fewer than {limits.min_sagas} in the step")
    if few_requests:
        stable = replace(stable, requests=run.requests)
        notes.append(f"stable requests counted since the run began: fewer than {limits.min_requests} in the step")
    return canary, stable, notes
