"""Per-part canaries as the orchestrator sees them: the weight of each saga part's v2 (a file per part, read at run
time), whether that v2 answers, and the versions a new saga is pinned to, once, at its start."""

import asyncio
import logging
import math
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import Gauge

from sagashop.kit.grpcclient import Dependency
from sagashop.kit.settings import SAGA_PARTS

log = logging.getLogger(__name__)

VERSIONS = ("v1", "v2")  # v1 stable, v2 the canary
VERSION_KEY = {part: f"{part}_version" for part in SAGA_PARTS}  # the context key holding a saga's pin of a part
STABLE = {**dict.fromkeys(VERSION_KEY.values(), "v1"), "route": "v1"}  # a saga's context with every part on v1
READ_EVERY = 1.0  # seconds between reads of the weights
PROBE_EVERY = 3.0  # seconds between health probes of a part's v2, while its weight is above 0
PROBE_WITHIN = 1.0  # seconds a probe waits for its answer
WEIGHT = Gauge("sagashop_canary_weight", "percent of new sagas the orchestrator pins to the part's canary (v2) now",
               ["part"])


def version_of(context: Mapping[str, str], part: str) -> str:
    """The version a saga is pinned to for `part`. A saga started by an orchestrator that pinned whole sagas has
    its `route` only."""
    return context.get(VERSION_KEY[part]) or context.get("route", "v1")


class Weights:
    """Each part's canary weight, from a directory holding one file per part, named after it, with the percent
    "0".."100" (a ConfigMap mounted as a directory). A missing directory or file counts 0; a bad value keeps the
    last good one, with one warning per bad value."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.now = dict.fromkeys(SAGA_PARTS, 0.0)  # part -> the weight in use
        self.gauges = {part: WEIGHT.labels(part) for part in SAGA_PARTS}
        self.refused: dict[str, str] = {}  # part -> the bad value last warned about

    def read(self) -> dict[str, float]:
        """Reads every part's file again; returns the weights in use."""
        for part in self.now:
            if (weight := self._weight(part)) is not None:
                self.now[part] = weight
                self.gauges[part].set(weight)
        return self.now

    def _weight(self, part: str) -> float | None:
        """The part's weight as its file says, 0 without a file, None for a value that is not one."""
        if self.directory is None:
            return 0.0
        try:
            text = (self.directory / part).read_text().strip()
        except FileNotFoundError:
            text = "0"
        except (OSError, UnicodeDecodeError) as e:
            text = f"unreadable: {e}"
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if 0 <= weight <= 100:  # NaN is neither
            self.refused.pop(part, None)
            return weight
        if self.refused.get(part) != text:
            self.refused[part] = text
            log.warning("canary weight of %s in %s is %r, not a percent 0 to 100; keeping %s", part,
                        self.directory / part, text[:100], self.now[part])
        return None


class Canary:
    """Pins new sagas: per saga part, v2 with the probability its weight says, if that v2 answered its latest health
    probe; v1 otherwise. `watch()` keeps the weights and probes up to date in the background, so picking the pins
    of a saga costs no I/O."""

    def __init__(self, weights: Weights, v2: Mapping[str, Dependency[Any]]) -> None:
        """`v2`: each saga part's v2, as the saga calls it (with the pin header)."""
        self.weights, self.v2 = weights, v2
        self.healthy = dict.fromkeys(weights.now, False)  # part -> its v2 answered its latest probe
        self.probed_at = dict.fromkeys(weights.now, -math.inf)

    def pins(self) -> dict[str, str]:
        """A new saga's context: the version of each saga part, and its `route` (v2 if any part is on v2), kept for
        the readers of whole-saga pins."""
        weights, healthy, pins = self.weights.now, self.healthy, STABLE.copy()
        for part, key in VERSION_KEY.items():
            if healthy[part] and random.random() * 100 < weights[part]:  # healthy: its weight is above 0
                pins[key] = pins["route"] = "v2"
        return pins

    async def refresh(self) -> None:
        """Reads the weights, and probes the v2 of each part whose weight is above 0 and whose last probe is
        PROBE_EVERY old (at once when its weight has just risen from 0)."""
        now = time.monotonic()
        due = []
        for part, weight in self.weights.read().items():
            if weight <= 0:  # not probed meanwhile: once raised again, its v2 is probed before any saga pins it
                self.healthy[part], self.probed_at[part] = False, -math.inf
            elif now - self.probed_at[part] >= PROBE_EVERY:
                due.append(part)
        answers = await asyncio.gather(*(self.v2[part].is_serving(timeout=PROBE_WITHIN) for part in due))
        for part, healthy in zip(due, answers, strict=True):
            if healthy != self.healthy[part]:
                log.info("%s v2 %s its health check", part, "answers" if healthy else "fails")
            self.healthy[part], self.probed_at[part] = healthy, now

    async def watch(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a passing fault: the weights and probes in use stay until the next tick
                log.exception("canary weights or probes failed")
            await asyncio.sleep(READ_EVERY)
