"""Work that costs the most, bounded: at most as many at once as this process has CPUs, a few more waiting, and
the rest refused at once (TooMany) instead of queueing without limit."""

import asyncio
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import TooMany

T = TypeVar("T")
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2, as a container sees its own: "<quota> <period>" or "max ..."


def usable_cpus(cpu_max: Path = CPU_MAX) -> int:
    """The CPUs this process may use: those it may run on, fewer if its cgroup's quota allows less (a pod's CPU
    limit), at least one."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
        return max(1, min(cpus, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2 file, or "max": no quota
        return cpus


class Bounded:
    """Runs a blocking function on a worker thread, `at_once` at most at the same time and `waiting` more queued;
    beyond, refused with TooMany. So a flood costs bounded memory and CPU, and who is served is served in time."""

    def __init__(self, what: str, at_once: int, waiting: int) -> None:
        self.what, self.limit = what, at_once + waiting
        self.slots = asyncio.Semaphore(at_once)
        self.busy = 0  # running and queued

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self.busy >= self.limit:
            raise TooMany(f"too many {self.what} at once; try again shortly")
        self.busy += 1
        try:
            async with self.slots:
                return await asyncio.to_thread(fn, *args)
        finally:
            self.busy -= 1
