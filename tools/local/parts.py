"""One part of a shop as a process of its own, the same `sagashop serve PART` a pod runs, and free ports on
loopback for it. The local runner, the chaos campaign's replicas, the floor and the tests all start parts here."""

import asyncio
import os
import random
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SERVE = ("tools.cli", "serve")  # `sagashop serve PART`, run by this interpreter


def ephemeral_range() -> range:
    """The ports the kernel gives outgoing connections (and `bind(0)`): a port taken from it can be the local end of
    some connection by the time a part binds it, so parts listen below it."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default; other kernels: a range at least as wide is kept clear
    return range(low, high + 1)


LISTEN_PORTS = range(20000, 32768)  # below Linux's default ephemeral range; checked against the real one


def free_ports(n: int) -> list[int]:
    """`n` distinct ports nothing listens on now, none of them a port outgoing connections are given (all held
    open together while they are picked, so none is handed out twice)."""
    outgoing, held = ephemeral_range(), list[socket.socket]()
    try:
        for port in random.sample(LISTEN_PORTS, len(LISTEN_PORTS)):
            if len(held) == n:
                break
            if port in outgoing:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        if len(held) < n:
            raise OSError(f"fewer than {n} free ports on 127.0.0.1 in {LISTEN_PORTS}")
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
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
