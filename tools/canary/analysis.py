"""Is a canary step healthy? The figures of each version (v1 stable, v2 canary) of the part under test, and a verdict.

Two kinds of figures, both counted over a window by `window.py`:
- the checkout sagas, split by the saga label `<part>_version` (the version the saga was pinned to for that part):
  for the saga parts (order, inventory, payment, shipping) only;
- the requests Istio's sidecars saw arrive at each version of the part (reporter="destination"): every part, and
  the only signal for the parts no saga calls by version (gateway, user, orchestrator). They count the traffic
  no pin header steers too.
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .files import NAMESPACE

STABLE, CANARY = "v1", "v2"
HEALTHY, TOO_FEW, UNHEALTHY = "healthy", "too few", "unhealthy"
SAGA_SELECTOR = ('{__name__=~"sagashop_saga_completed_total|sagashop_saga_parked_total|'
                 'sagashop_saga_step_seconds_bucket",saga="checkout"}')
REQUESTS, DURATIONS = "istio_requests_total", "istio_request_duration_milliseconds_bucket"
FAILED_GRPC = frozenset({"2", "4", "13", "14", "15"})  # UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS
Series = dict[frozenset[tuple[str, str]], float]  # the labels of a series (with __name__) -> its count


def request_selector(part: str) -> str:
    return (f'{{__name__=~"{REQUESTS}|{DURATIONS}",reporter="destination",'
            f'destination_workload_namespace="{NAMESPACE}",destination_app="{part}"}}')


@dataclass(frozen=True)
class Sagas:
    """The checkout sagas pinned to one version of the part over a window."""

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


@dataclass(frozen=True)
class Requests:
    """The requests one version of the part answered over a window, as its sidecar saw them."""

    total: int = 0
    failed: int = 0  # HTTP 5xx, or gRPC UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE or DATA_LOSS
    p99: float | None = None  # milliseconds; None without any

    @property
    def error_rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


@dataclass(frozen=True)
class Figures:
    sagas: Sagas | None  # None: the part is no saga part, its sagas are not told apart by its version
    requests: Requests


def sagas(series: Series, part: str, version: str) -> Sagas:
    ended = compensated = parked = 0.0
    unavailable: dict[str, float] = defaultdict(float)
    buckets: dict[float, float] = defaultdict(float)
    for labels in mine(series, f"{part}_version", version):
        value = series[labels]
        label = dict(labels)
        if label["__name__"] == "sagashop_saga_completed_total":
            ended += value
            if label.get("outcome") == "compensated":
                compensated += value
                if label.get("failure_reason", "").endswith("_unavailable"):
                    unavailable[label["failure_reason"]] += value
        elif label["__name__"] == "sagashop_saga_parked_total":
            ended += value
            parked += value
        elif label.get("action") == "execute":
            buckets[float(label["le"])] += value
    return Sagas(round(ended), round(compensated), {k: round(v) for k, v in unavailable.items() if round(v)},
                 round(parked), quantile(0.99, buckets))


def requests(series: Series, version: str) -> Requests:
    total = failed = 0.0
    buckets: dict[float, float] = defaultdict(float)
    for labels in mine(series, "destination_version", version):
        value = series[labels]
        label = dict(labels)
        if label["__name__"] == REQUESTS:
            total += value
            if label.get("response_code", "").startswith("5") or label.get("grpc_response_status") in FAILED_GRPC:
                failed += value
        elif label["__name__"] == DURATIONS:
            buckets[float(label["le"])] += value
    return Requests(round(total), round(failed), quantile(0.99, buckets))


def mine(series: Series, name: str, value: str) -> Iterable[frozenset[tuple[str, str]]]:
    return (labels for labels in series if (name, value) in labels)


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus's histogram_quantile() over cumulative bucket counts (upper bound -> count, +Inf included)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = max(buckets[bound], below)  # monotonic, even if one series restarted within the window
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its upper bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


@dataclass(frozen=True)
class Limits:
    min_sagas: int = 20  # canary sagas a step must see ended before their rates are judged
    max_compensation_excess: float = 5.0  # percentage points the canary's compensation rate may exceed stable's by
    max_unavailable_rate: float = 5.0  # percent of the canary's sagas compensated for `<service>_unavailable`
    max_p99_ratio: float = 1.5  # canary p99 step latency / stable's ...
    p99_floor: float = 0.25  # ... judged only above this many seconds
    max_parked: int = 0  # canary sagas parked for an operator in one step
    min_requests: int = 50  # canary requests a step must see before their figures are judged
    max_error_excess: float = 1.0  # percentage points the canary's request error rate may exceed stable's by
    max_request_p99_ratio: float = 1.5  # canary p99 request latency / stable's ...
    request_p99_floor: float = 100.0  # ... judged only above this many milliseconds


@dataclass(frozen=True)
class Verdict:
    state: str  # HEALTHY, TOO_FEW or UNHEALTHY
    reasons: list[str]  # why it is not healthy: each names the metric, both versions' values and the limit
    notes: list[str]  # checks that could not be made, and where the stable figures come from


def percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def judge(canary: Figures, stable: Figures, limits: Limits, notes: Iterable[str] = ()) -> Verdict:
    """The canary's figures in a step against the stable version's. A saga part is judged on its sagas and on its
    requests when there are enough of them (without Istio there are none); any other part on its requests only.
    Parked sagas count however few sagas ended."""
    reasons: list[str] = []
    notes = list(notes)
    short = []
    if canary.sagas is not None and stable.sagas is not None:
        short += judge_sagas(canary.sagas, stable.sagas, limits, reasons, notes)
    if canary.requests.total >= limits.min_requests:
        judge_requests(canary.requests, stable.requests, limits, reasons, notes)
    else:
        too_few = (f"too few canary requests: {canary.requests.total} (stable {stable.requests.total}), "
                   f"at least {limits.min_requests} needed to judge")
        if not canary.requests.total and not stable.requests.total:
            notes.append("no Istio request metrics on either version: does Prometheus scrape the sidecars?")
        if canary.sagas is None:
            short.append(too_few)
        else:
            notes.append(f"requests not judged: {too_few}")
    if reasons:
        return Verdict(UNHEALTHY, reasons, notes)
    return Verdict(TOO_FEW, short, notes) if short else Verdict(HEALTHY, [], notes)


def judge_sagas(canary: Sagas, stable: Sagas, limits: Limits, reasons: list[str], notes: list[str]) -> list[str]:
    """Adds the sagas' reasons and notes; returns why they could not be judged (too few), if so."""
    if canary.parked > limits.max_parked:
        reasons.append(f"parked sagas: canary {canary.parked}, stable {stable.parked}, limit {limits.max_parked}")
    if canary.ended < limits.min_sagas:
        if not canary.ended and not stable.ended:
            notes.append("no saga ended on either version: does Prometheus scrape the orchestrators, and do orders "
                         "come in (--load)?")
        return [f"too few canary sagas: {canary.ended} ended (stable {stable.ended}), "
                f"at least {limits.min_sagas} needed to judge"]
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
    judge_p99("step", canary.p99, stable.p99, limits.max_p99_ratio, limits.p99_floor, "{:.3f}s", reasons, notes)
    return []


def judge_requests(canary: Requests, stable: Requests, limits: Limits, reasons: list[str], notes: list[str]) -> None:
    if not stable.total:
        notes.append("no stable requests: the request error rate is compared with 0%")
    if 100 * (canary.error_rate - stable.error_rate) > limits.max_error_excess:
        reasons.append(f"request error rate: canary {percent(canary.error_rate)} ({canary.failed} of "
                       f"{canary.total}), stable {percent(stable.error_rate)}, "
                       f"limit stable + {limits.max_error_excess:.1f} points")
    judge_p99("request", canary.p99, stable.p99, limits.max_request_p99_ratio, limits.request_p99_floor, "{:.0f}ms",
              reasons, notes)


def judge_p99(what: str, canary: float | None, stable: float | None, ratio: float, floor: float, shown: str,
              reasons: list[str], notes: list[str]) -> None:
    """The canary's p99 `what` latency against `ratio` x stable's, judged above `floor` (values `shown` in their
    unit: seconds for steps, milliseconds for requests)."""
    if canary is None or stable is None:
        notes.append(f"p99 {what} latency not compared: no {what} timings on "
                     + ("the canary" if canary is None else "the stable version"))
    elif canary > max(ratio * stable, floor):
        unit = shown.rsplit("}", 1)[1]
        reasons.append(f"p99 {what} latency: canary {shown.format(canary)}, stable {shown.format(stable)}, "
                       f"limit {ratio:g} x stable (judged above {floor:g}{unit})")
