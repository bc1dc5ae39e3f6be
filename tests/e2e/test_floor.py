"""`sagashop floor`: the shop's topology started bare makes the shop's writes and Redis calls per checkout, reports
each part's CPU, and leaves no process, schema, key or file behind, also when it is stopped early or Redis is
down."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import redis

from tests.conftest import run_aside
from tools.local.parts import free_port

PARTS = {"gateway", "orchestrator", "order", "inventory", "payment", "shipping"}
CHECKOUTS = 40
# the shop's writes per checkout (README > Performance): the saga created, then moved 5 times; the order created,
# then approved; the stock reserved, then committed; one charge; one shipment
SHOP_WRITES = {"saga": {"rows": 1, "updates": 5}, "order": {"rows": 1, "updates": 1},
               "inventory": {"rows": 1, "updates": 1}, "payment": {"rows": 1, "updates": 0},
               "shipping": {"rows": 1, "updates": 0}}


def floor(env: dict[str, str]) -> dict:
    run = subprocess.run([sys.executable, "-m", "tools.cli", "floor", "--checkouts", str(CHECKOUTS),
                          "--concurrency", "4", "--json"], env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def floor_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if "tools.floor" in (p.info["cmdline"] or [])]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SAGASHOP_")}
    return {**clean, "SAGASHOP_DATA_DIR": str(tmp_path / "data")}


def test_on_sqlite_every_checkout_makes_the_shops_writes_and_nothing_is_left(env, tmp_path):
    figures = floor(env)

    assert figures["outcomes"] == {"APPROVED": CHECKOUTS}
    assert figures["writes_per_checkout"] == SHOP_WRITES
    assert figures["redis_calls_per_checkout"] == 0  # no Redis: the shop's stores are in-process
    assert set(figures["cpu_ms_per_checkout"]) == PARTS
    assert figures["cpu_ms_per_checkout"]["orchestrator"] > 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert not floor_processes()
    assert list((tmp_path / "data").iterdir()) == []  # the floor's SQLite files went with it


@pytest.mark.postgres
@pytest.mark.redis
def test_on_postgresql_and_redis_every_checkout_makes_the_shops_writes_and_calls(env, postgres_database,
                                                                                 redis_server):
    env |= {"SAGASHOP_DATABASE_URL": postgres_database, "SAGASHOP_REDIS_URL": redis_server,
            "SAGASHOP_DATABASE_POOL_SIZE": "2"}  # 5 parts' pools beside the test shop's on one server

    figures = floor(env)

    assert figures["outcomes"] == {"APPROVED": CHECKOUTS}
    assert figures["writes_per_checkout"] == SHOP_WRITES
    assert figures["redis_calls_per_checkout"] == 1  # the gateway's rate limiter
    assert set(figures["cpu_ms_per_checkout"]) == PARTS
    assert not floor_processes()
    schemas = run_aside(_schemas(postgres_database))
    assert schemas == []  # the run's schema was dropped
    assert redis.Redis.from_url(redis_server).keys("sagashop_floor_*") == []


def test_stopped_early_it_leaves_nothing_behind(env, tmp_path):
    run = subprocess.Popen([sys.executable, "-m", "tools.cli", "floor", "--checkouts", "1000000",
                            "--concurrency", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(floor_processes()) < len(PARTS) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    assert len(floor_processes()) == len(PARTS)
    time.sleep(3)  # answering checkouts by now

    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)

    assert run.returncode == 130, stderr[-2000:]
    assert "stopped before the end" in stderr
    assert not floor_processes()
    assert list((tmp_path / "data").iterdir()) == []


def test_with_redis_down_it_says_so_and_leaves_nothing_behind(env, tmp_path):
    port = free_port()  # nothing listens there
    run = subprocess.run([sys.executable, "-m", "tools.cli", "floor", "--checkouts", "5", "--concurrency", "2"],
                         env=env | {"SAGASHOP_REDIS_URL": f"redis://127.0.0.1:{port}/0"}, capture_output=True,
                         text=True, timeout=240)

    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.startswith("sagashop floor: ") and "Connection refused" in run.stderr
    assert not floor_processes()
    assert list((tmp_path / "data").iterdir()) == []


async def _schemas(url: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'sagashop_floor_%'")]
    finally:
        await conn.close()
