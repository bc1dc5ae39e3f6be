"""One part of a shop as a process of its own, the same `sagashop serve PART` a pod runs, and free ports on
loopback for it. The local runner, the chaos campaign's replicas, the floor and the tests all start parts here."""

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

SERVE = ("tools.cli", "serve")  # `sagashop serve PART`, run by this interpreter


def free_ports(n: int) -> list[int]:
    """`n` distinct ports nothing listens on now (all held open together, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def command(part: str, *args: str, program: tuple[str, ...] = SERVE) -> list[str]:
    return [sys.executable, "-m", *program, part, *args]


def part_env(env: Mapping[str, str] | None = None, **overrides: str) -> dict[str, str]:
    """The environment of a part: `env` (by default this process's) with the overrides; its output unbuffered, so
    its lines are read as they come."""
    return {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1", **overrides}


async def start(part: str, *args: str, env: Mapping[str, str] | None = None, program: tuple[str, ...] = SERVE,
                **options: Any) -> asyncio.subprocess.Process:
    """The part running, from a coroutine (`env`: by default this process's); `options` as
    asyncio.create_subprocess_exec takes them. `program` runs another module than `sagashop`."""
    return await asyncio.create_subprocess_exec(*command(part, *args, program=program), env=env, **options)


def popen(part: str, *args: str, env: Mapping[str, str] | None = None, program: tuple[str, ...] = SERVE,
          **options: Any) -> subprocess.Popen[bytes]:
    """The part running, from blocking code; `options` as subprocess.Popen takes them."""
    return subprocess.Popen(command(part, *args, program=program), env=env, **options)
