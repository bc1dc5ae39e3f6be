"""Is a canary step healthy? What the checkout sagas of each route (v1 stable, v2 canary) did, from Prometheus.

The counts are the difference of two snapshots of the orchestrators' saga series (instant queries at the start and
at the end of a window), taken series by series: a series that is new in the window, or went down because its
orchestrator restarted (as `kubectl set env` makes them do), counts from zero. PromQL's increase() would miss the
first saga of a series born in the window, and a canary's first `payment_unavailable` is just that.
"""

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .files import CanaryError

STABLE, CANARY = "v1", "v2"
HEALTHY, TOO_FEW, UNHEALTHY = "healthy", "too few sagas", "unhealthy"
SELECTOR = ('{__name__=~"sagashop_saga_completed_total|sagashop_saga_parked_total|sagashop_saga_step_seconds_bucket",'
            'saga="checkout"}')
Series = dict[frozenset[tuple[str, str]], float]  # the labels of a series (with __name__) -> its value


async def snapshot(client: httpx.AsyncClient, prometheus: str) -> Series:
    """The checkout sagas' series as Prometheus holds them now."""
    try:
        reply = await client.get(f"{prometheus.rstrip('/')}/api/v1/query", params={"query": SELECTOR})
        body = reply.json()
    except (httpx.HTTPError, ValueError) as e:
        raise CanaryError(f"cannot query Prometheus at {prometheus}: {e!r}") from e
    if body.get("status") != "success":
        raise CanaryError(f"Prometheus at {prometheus} answered {reply.status_code}: {body.get('error', body)}")
    return series_of(body)


def series_of(body: Mapping[str, Any]) -> Series:
    """The series of an instant query's answer (`resultType` vector)."""
    return {frozenset(item["metric"].items()): float(item["value"][1]) for item in body["data"]["result"]}


def grown(before: Series, after: Series) -> Series:
    """What each series grew by from one snapshot to the next."""
    moved = {}
    for key, value in after.items():
        start = before.get(key, 0.0)
        moved[key] = value - start if value >= start else value  # lower than before: counting restarted from 0
    return moved


@dataclass(frozen=True)
class Figures:
    """The checkout sagas of one route over a window."""

    ended: int = 0  # succeeded, compensated or parked
    compensated: int = 0
    unavailable: dict[str, int] = field(default_factory=dict)  # compensated for `<service>_unavailable`, by reason
    parked: int = 0
    p99: float | None = None  # seconds of one attempt of a forward step; None without any

    @property
    def compensation_rate(self) -> float:
        return self.compensated / self.ended if self.ended else 0.0

    @property
    def unavailable_rate(self) -> float:
        return sum(self.unavailable.values()) / self.ended if self.ended else 0.0


def figures(series: Series, route: str) -> Figures:
    ended = compensated = parked = 0.0
    unavailable: dict[str, float] = defaultdict(float)
    buckets: dict[float, float] = defaultdict(float)
    for key, value in series.items():
        labels = dict(key)
        if labels.get("route") != route:
            continue
        if labels["__name__"] == "sagashop_saga_completed_total":
            ended += value
            if labels.get("outcome") == "compensated":
                compensated += value
                if labels.get("failure_reason", "").endswith("_unavailable"):
                    unavailable[labels["failure_reason"]] += value
        elif labels["__name__"] == "sagashop_saga_parked_total":
            ended += value
            parked += value
        elif labels.get("action") == "execute":
            buckets[float(labels["le"])] += value
    return Figures(round(ended), round(compensated), {k: round(v) for k, v in unavailable.items() if round(v)},
                   round(parked), quantile(0.99, buckets))


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus's histogram_quantile() over cumulative bucket counts (upper bound -> count, +Inf included)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = max(buckets[bound], below)  # monotonic, even if one series restarted between the snapshots
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its upper bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


@dataclass(frozen=True)
class Limits:
    min_sagas: int = 20  # canary sagas a step must see ended before its rates are judged
    max_compensation_excess: float = 5.0  # percentage points the canary's compensation rate may exceed stable's by
    max_unavailable_rate: float = 5.0  # percent of the canary's sagas compensated for `<service>_unavailable`
    max_p99_ratio: float = 1.5  # canary p99 step latency / stable's ...
    p99_floor: float = 0.25  # ... judged only above this many seconds
    max_parked: int = 0  # canary sagas parked for an operator in one step


@dataclass(frozen=True)
class Verdict:
    state: str  # HEALTHY, TOO_FEW or UNHEALTHY
    reasons: list[str]  # why it is not healthy: each names the metric, both routes' values and the limit
    notes: list[str]  # checks that could not be made


def percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def judge(canary: Figures, stable: Figures, limits: Limits) -> Verdict:
    """The canary's figures in a step against the stable route's; parked sagas count however few sagas ended."""
    reasons: list[str] = []
    notes: list[str] = []
    if canary.parked > limits.max_parked:
        reasons.append(f"parked sagas: canary {canary.parked}, stable {stable.parked}, limit {limits.max_parked}")
    if canary.ended < limits.min_sagas:
        if reasons:
            return Verdict(UNHEALTHY, reasons, notes)
        if not canary.ended and not stable.ended:
            notes.append("no saga ended on either route: does Prometheus scrape the orchestrators, and do orders "
                         "come in (--load)?")
        return Verdict(TOO_FEW, [f"too few canary sagas: {canary.ended} ended (stable {stable.ended}), "
                                 f"at least {limits.min_sagas} needed to judge"], notes)
    if 100 * canary.unavailable_rate > limits.max_unavailable_rate:
        which = ", ".join(f"{reason} {n}" for reason, n in sorted(canary.unavailable.items()))
        reasons.append(f"unavailable rate: canary {percent(canary.unavailable_rate)} ({which}), "
                       f"stable {percent(stable.unavailable_rate)}, limit {limits.max_unavailable_rate:.1f}%")
    if not stable.ended:
        notes.append("no stable sagas: the compensation rate is compared with 0%")
    if 100 * (canary.compensation_rate - stable.compensation_rate) > limits.max_compensation_excess:
        reasons.append(f"compensation rate: canary {percent(canary.compensation_rate)}, "
                       f"stable {percent(stable.compensation_rate)}, "
                       f"limit stable + {limits.max_compensation_excess:.1f} points")
    if canary.p99 is None or stable.p99 is None:
        notes.append("p99 step latency not compared: no step timings on " + ("the canary" if canary.p99 is None
                                                                             else "the stable route"))
    elif canary.p99 > max(limits.max_p99_ratio * stable.p99, limits.p99_floor):
        reasons.append(f"p99 step latency: canary {canary.p99:.3f}s, stable {stable.p99:.3f}s, "
                       f"limit {limits.max_p99_ratio:g} x stable (judged above {limits.p99_floor:g}s)")
    return Verdict(UNHEALTHY if reasons else HEALTHY, reasons, notes)
