"""The `shop` fixture: `sagashop up` as a user runs it, on free ports, against SQLite files or PostgreSQL."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sagashop.kit.settings import PARTS
from tests.conftest import POSTGRES_URL, _admin, run_aside

from .shop import Shop


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_shop(tmp: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], dict[str, str], Path]:
    env = {**os.environ, "SAGASHOP_DATA_DIR": str(tmp / "data"), "SAGASHOP_ADMIN_PASSWORD": "admin-secret-1",
           "SAGASHOP_ADMIN_EMAIL": "admin@example.com", "SAGASHOP_JWT_SECRET": "test-secret-" + uuid.uuid4().hex,
           "SAGASHOP_STEP_DEADLINE_SECONDS": "3", "SAGASHOP_SAGA_LEASE_SECONDS": "3"}
    env.pop("SAGASHOP_DATABASE_URL", None)
    if database_url:
        env["SAGASHOP_DATABASE_URL"] = database_url
    for part, port in zip(PARTS, free_ports(len(PARTS)), strict=True):
        env[f"SAGASHOP_{part.upper()}_PORT"] = str(port)
    log = tmp / "up.log"
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)
    return process, env, log


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, within: float = 90) -> None:
    """Ready = the gateway's /readyz says 200 and `up` printed its banner (the catalog is seeded by then)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sagashop up exited:\n{log.read_text()[-3000:]}")
        if "sagashop is ready" in log.read_text(errors="replace"):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"sagashop up not ready in {within}s:\n{log.read_text()[-3000:]}")


def stop_shop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    database_url = None
    if request.param == "postgres":
        request.getfixturevalue("postgres_server")
        name = f"sagashop_e2e_{uuid.uuid4().hex[:10]}"
        run_aside(_admin(f'CREATE DATABASE "{name}"'))
        database_url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    process, env, log = start_shop(tmp_path_factory.mktemp(f"shop-{request.param}"), database_url)
    url = f"http://127.0.0.1:{env['SAGASHOP_GATEWAY_PORT']}"
    try:
        wait_ready(url, process, log)
        with Shop(url, env, process.pid, log) as shop:
            yield shop
    finally:
        stop_shop(process)
        if database_url:
            run_aside(_admin(f'DROP DATABASE "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)'))
