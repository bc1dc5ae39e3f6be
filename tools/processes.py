"""The shop's processes on this machine, as a campaign or a benchmark watches them: resident memory, CPU time."""

import asyncio

import psutil


def shop_processes(gateway_port: int) -> dict[str, psutil.Process]:
    """The `sagashop serve NAME` processes here of the shop whose gateway listens on `gateway_port` (they share
    its environment), by part; the first of each part."""
    found: dict[str, psutil.Process] = {}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if len(cmdline) < 2 or cmdline[-2] != "serve" or "tools.cli" not in cmdline:
            continue
        try:
            port = int(process.environ().get("SAGASHOP_GATEWAY_PORT", "8080"))
        except (psutil.Error, ValueError):
            continue
        if port == gateway_port:
            found.setdefault(cmdline[-1], process)
    return found


async def sample(samples: dict[str, list[float]], gateway_port: int, stop: asyncio.Event, every: float = 2.0) -> None:
    """Appends each part's RSS in MiB every `every` seconds until `stop`; a part that restarted is followed."""
    while not stop.is_set():
        for part, process in shop_processes(gateway_port).items():
            try:
                samples.setdefault(part, []).append(round(process.memory_info().rss / 2**20, 1))
            except psutil.Error:  # it died between the listing and the reading
                pass
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


def cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """User + system CPU time each part has used so far."""
    used = {}
    for part, process in processes.items():
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        used[part] = times.user + times.system
    return used
