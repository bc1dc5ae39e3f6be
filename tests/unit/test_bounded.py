"""Password hashing bounded: at most so many at once, a few more waiting, the rest refused at once."""

import asyncio
import threading

import pytest

from sagashop.kit.bounded import Bounded, usable_cpus
from sagashop.kit.errors import TooMany


async def test_beyond_those_running_and_waiting_a_call_is_refused_at_once_and_served_again_later():
    gate, release = Bounded("password checks", at_once=1, waiting=1), threading.Event()
    running = [asyncio.create_task(gate.run(release.wait, 10)) for _ in range(2)]
    await asyncio.sleep(0.1)

    with pytest.raises(TooMany) as refused:
        await gate.run(lambda: "never")
    assert (refused.value.code, refused.value.retry_after) == ("rate_limited", 1)
    release.set()
    assert await asyncio.gather(*running) == [True, True]
    assert await gate.run(lambda: "served") == "served"


async def test_no_more_run_at_once_than_allowed():
    gate, lock, at_once, most = Bounded("hashes", at_once=2, waiting=10), threading.Lock(), 0, 0

    def work() -> None:
        nonlocal at_once, most
        with lock:
            at_once += 1
            most = max(most, at_once)
        threading.Event().wait(0.05)
        with lock:
            at_once -= 1

    await asyncio.gather(*(gate.run(work) for _ in range(12)))
    assert most == 2


@pytest.mark.parametrize(("cpu_max", "expected"), [
    ("max 100000\n", None), ("50000 100000\n", 1), ("150000 100000\n", 2), ("garbled", None)])
def test_the_usable_cpus_honour_the_cgroup_quota(tmp_path, monkeypatch, cpu_max, expected):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert usable_cpus(tmp_path / "cpu.max") == (expected or 8)
    assert usable_cpus(tmp_path / "missing") == 8
