"""Runs every part of the shop as its own process (the same `sagashop serve NAME` Kubernetes runs), prefixes
their log lines, restarts a part that dies, and stops them all on SIGINT/SIGTERM.

Written here rather than taken from honcho (which stops every process when one exits, where we restart it) or
supervisord (a daemon with config files of its own): what we need is ~100 lines of asyncio.
"""

import asyncio
import signal
import sys
import time
from collections.abc import Mapping, Sequence

from .parts import part_env, start

COLORS = ("36", "33", "35", "32", "34", "31", "96")
RESTART_DELAYS = (0.5, 1, 2, 5, 10)  # seconds before restarting a part that died again and again
HEALTHY_AFTER = 5.0  # a part that ran this long before dying is restarted without delay growth
STOP_GRACE = 10.0


class Part:
    def __init__(self, name: str, color: str, width: int) -> None:
        self.name = name
        tty = sys.stdout.isatty()
        self.prefix = f"\x1b[{color}m{name:<{width}} |\x1b[0m " if tty else f"{name:<{width}} | "
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0

    def say(self, line: str) -> None:
        sys.stdout.write(self.prefix + line + "\n")
        sys.stdout.flush()


class Supervisor:
    def __init__(self, names: Sequence[str], env: Mapping[str, str],
                 env_of: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """`env` is what every part gets on top of this process's environment; `env_of` what one part gets."""
        width = max(len(name) for name in names)
        self.parts = [Part(name, COLORS[i % len(COLORS)], width) for i, name in enumerate(names)]
        self.env = {name: {**part_env(), **env, **(env_of or {}).get(name, {})} for name in names}
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        self.tasks = [asyncio.create_task(self._keep_running(part)) for part in self.parts]

    async def _keep_running(self, part: Part) -> None:
        failures = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            part.process = await start(
                part.name, env=self.env[part.name], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the parts in order
            )
            await self._relay(part)
            code = await part.process.wait()
            if self.stopping.is_set():
                return
            failures = 0 if time.monotonic() - started > HEALTHY_AFTER else failures + 1
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1] if failures else RESTART_DELAYS[0]
            part.say(f"exited with code {code}; restarting in {delay}s")
            part.restarts += 1
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
            except TimeoutError:
                pass

    async def _relay(self, part: Part) -> None:
        assert part.process is not None and part.process.stdout is not None
        async for raw in part.process.stdout:
            part.say(raw.decode(errors="replace").rstrip())

    async def stop(self) -> None:
        """SIGTERM to every part (they drain), SIGKILL to any still running after the grace period."""
        self.stopping.set()
        running = [p.process for p in self.parts if p.process and p.process.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), STOP_GRACE)
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    process.kill()
        await asyncio.gather(*self.tasks, return_exceptions=True)

