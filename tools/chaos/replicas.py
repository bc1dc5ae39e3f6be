"""Replicas the campaign owns: extra `sagashop serve PART` processes on the shop's databases. Orchestrator
replicas are SIGKILLed and restarted at random and take over sagas whose owner died, by lease; an inventory
replica may sweep reservations with a short TTL of its own."""

import asyncio
import ctypes
import random
import signal
import sys

from ..local.parts import free_port, part_env, start

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in the child before exec: a replica must not outlive the campaign that owns it (Linux)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Replicas:
    def __init__(self, count: int, rng: random.Random, part: str = "orchestrator", **env: str) -> None:
        """`count` processes of `part`, with `env` on top of this process's environment."""
        self.count, self.rng, self.part, self.env = count, rng, part, env
        self.processes: list[asyncio.subprocess.Process] = []
        self.kills = 0

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = {**part_env(), f"SAGASHOP_{self.part.upper()}_PORT": str(free_port()), **self.env}
        env.pop("SAGASHOP_METRICS_PORT", None)
        return await start(self.part, env=env, stdout=asyncio.subprocess.DEVNULL,
                           stderr=asyncio.subprocess.DEVNULL, preexec_fn=die_with_parent)

    async def start(self) -> None:
        self.processes = [await self._spawn() for _ in range(self.count)]

    async def kill_one(self) -> None:
        """SIGKILLs a random replica and starts a new one in its place."""
        if not self.processes:
            return
        victim = self.processes.pop(self.rng.randrange(len(self.processes)))
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        self.kills += 1
        self.processes.append(await self._spawn())

    async def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(p.wait() for p in self.processes))
