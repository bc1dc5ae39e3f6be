"""Runs processes (the shop's parts, each the same `sagashop serve NAME` Kubernetes runs, and the servers they need),
prefixes their log lines, restarts one that dies, and stops them in the order asked on SIGINT/SIGTERM.

Written here rather than taken from honcho (which stops every process when one exits, where we restart it) or
supervisord (a daemon with config files of its own): what we need is ~100 lines of asyncio.
"""

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

COLORS = ("36", "33", "35", "32", "34", "31", "96", "93")
RESTART_DELAYS = (0.5, 1, 2, 5, 10)  # seconds before restarting a process that died again and again
HEALTHY_AFTER = 5.0  # a process that ran this long before dying is restarted without delay growth
STOP_GRACE = 10.0


class Part:
    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], prefix: str) -> None:
        self.name, self.argv, self.env, self.prefix = name, list(argv), dict(env), prefix
        self.process: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.restarts = 0

    def say(self, line: str) -> None:
        sys.stdout.write(self.prefix + line + "\n")
        sys.stdout.flush()


class Supervisor:
    def __init__(self, names: Sequence[str], pid_dir: Path | None = None) -> None:
        """`names`: every process it may run, so that their prefixes line up and differ in colour. `pid_dir`: where
        each process's pid is kept as `<name>.pid` while it runs, for the tools beside it (`sagashop chaos` stops
        the broker and the mail sink through them); stale files are removed first."""
        width, tty = max(len(name) for name in names), sys.stdout.isatty()
        self.prefixes = {name: f"\x1b[{COLORS[i % len(COLORS)]}m{name:<{width}} |\x1b[0m " if tty
                         else f"{name:<{width}} | " for i, name in enumerate(names)}
        self.stopping = asyncio.Event()
        self.pid_dir = pid_dir
        if pid_dir is not None:
            pid_dir.mkdir(parents=True, exist_ok=True)
            for name in names:
                (pid_dir / f"{name}.pid").unlink(missing_ok=True)

    def trap(self) -> None:
        """SIGINT and SIGTERM set `stopping`: the caller stops the processes, in its order."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)

    def run(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Part:
        """Starts `argv` with exactly `env` and keeps it running until `stop`."""
        part = Part(name, argv, env, self.prefixes[name])
        part.task = asyncio.create_task(self._keep_running(part))
        return part

    async def _keep_running(self, part: Part) -> None:
        failures = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            part.process = await asyncio.create_subprocess_exec(
                *part.argv, env=part.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the processes in order
            )
            if self.stopping.is_set():  # `stop` came while it was starting, and found no process to signal
                part.process.send_signal(signal.SIGTERM)
            pid_file = self.pid_dir / f"{part.name}.pid" if self.pid_dir else None
            if pid_file:
                pid_file.write_text(f"{part.process.pid}\n")
            await self._relay(part)
            code = await part.process.wait()
            if pid_file:
                with contextlib.suppress(OSError):
                    pid_file.unlink()
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

    async def stop(self, parts: Sequence[Part]) -> None:
        """SIGTERM to each of `parts` (they drain), SIGKILL to any still running after the grace period."""
        self.stopping.set()
        for part in parts:
            if part.process and part.process.returncode is None:
                part.process.send_signal(signal.SIGTERM)
        tasks = [part.task for part in parts if part.task]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE)
        for part in parts:
            if part.process and part.process.returncode is None:
                part.process.kill()
        await asyncio.gather(*tasks, return_exceptions=True)
