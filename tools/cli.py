"""`sagashop`: serve NAME (the container entrypoint) | up | demo | bench | floor | chaos | canary | events.

Every sub-command but `serve` imports its module when it runs, so a pod running `sagashop serve` loads nothing of
the lab (tools/) beyond this file."""

import os

# gRPC's classic I/O manager: a message is read by the thread that waits for gRPC's completions instead of being
# handed from an EventEngine thread to it, one thread hop fewer per message (same calls, deadlines and errors), so
# less CPU and fewer context switches per call (docs/performance.md). gRPC reads it when first imported, so it is
# set before anything imports grpc; the processes this one starts inherit it. Set GRPC_EXPERIMENTS yourself to
# choose otherwise.
os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_client,-event_engine_listener,"
                      "-event_engine_for_all_other_endpoints,-event_engine_callback_cq")

import asyncio
import importlib
import sys
from typing import Any

import typer
import uvloop
from pydantic import ValidationError
from typer.core import TyperGroup

from sagashop.kit import logs, telemetry
from sagashop.kit.settings import Part, Settings


class Commands(TyperGroup):
    """The command's group, with `canary` (a group of its own, and ruamel.yaml) loaded only when asked for. The
    context and command are click's, which typer vendors without a public name: hence `Any`."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted([*super().list_commands(ctx), "canary"])

    def get_command(self, ctx: Any, name: str) -> Any:
        if name != "canary":
            return super().get_command(ctx, name)
        from .canary.cli import app as canary

        command = typer.main.get_command(canary)
        command.name = name
        return command


app = typer.Typer(cls=Commands, no_args_is_help=True, add_completion=False,
                  help="Run and try the sagashop microservices.")
events = typer.Typer(no_args_is_help=True, help="The domain events' consumers, against a running shop.")
app.add_typer(events, name="events")


@app.command()
def up() -> None:
    """Start the whole shop here, seed the demo catalog and the admin, and stream every part's logs."""
    from .local.up import run

    asyncio.run(run(Settings()))


@app.command()
def serve(name: Part) -> None:
    """Run one part in the foreground (the container entrypoint)."""
    settings = Settings()
    logs.configure(name, settings.log_level, settings.log_format)
    telemetry.configure(name, settings)
    main = importlib.import_module(f"services.{name}.main").main
    from sagashop.kit.schema import CannotStart  # loaded with the part's main already

    try:
        uvloop.run(main(settings))  # libuv's event loop: less overhead per callback than asyncio's own
    except CannotStart as e:  # its database: unreachable, refusing us, or at a revision this version must not touch
        print(f"sagashop serve {name}: {e}", file=sys.stderr)
        raise typer.Exit(1) from None


@app.command()
def demo(url: str = typer.Option(None, help="gateway URL; default: this machine's gateway port")) -> None:
    """Against a running shop: place orders that show the happy path and each compensation path."""
    from .demo import run

    asyncio.run(run(url or f"http://127.0.0.1:{Settings().gateway_port}"))


@app.command()
def chaos(
    url: str = typer.Option(None, help="gateway URL; default: this machine's gateway port"),
    orders: int = typer.Option(500, min=1), concurrency: int = typer.Option(32, min=1),
    seed: int = typer.Option(7), duration: float = typer.Option(120.0, help="seconds of placing orders at most"),
    replicas: int = typer.Option(2, min=0, help="orchestrator replicas to own and kill (same database settings)"),
    reservation_ttl: float = typer.Option(0.0, min=0, help="seconds: also sweep reservations this old, from an "
                                          "inventory replica of its own (0: only the shop's sweeper)"),
    event_rounds: int = typer.Option(1, min=0, help="times each fault on the event path is made (0: none)"),
    outage: float = typer.Option(3.0, min=0.1, max=10, help="seconds the broker and the mail sink stay down"),
    catch_up: float = typer.Option(90.0, min=1, help="seconds the event consumers have to agree with the orders"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Against a running shop: concurrent orders under random faults, orchestrator kills and faults on the event
    path, then an audit of stock, money and shipments and of what the event consumers built. Exits 1 on any
    violation."""
    import httpx

    from .chaos import campaign, report
    from .shopclient import ShopError

    settings = Settings()
    plan = campaign.Plan(orders=orders, concurrency=concurrency, seed=seed, duration=duration, replicas=replicas,
                         reservation_ttl=reservation_ttl, event_rounds=event_rounds, outage=outage, catch_up=catch_up)
    admin = (settings.admin_email, settings.admin_password or "")
    try:
        result = asyncio.run(campaign.run(url or f"http://127.0.0.1:{settings.gateway_port}", admin, plan, settings))
    except (ShopError, httpx.HTTPError, OSError) as e:  # the shop stopped answering: the campaign cannot judge it
        print(f"sagashop chaos: {e}", file=sys.stderr)
        raise typer.Exit(2) from e
    print(report.as_json(plan, result) if json_out else report.text(plan, result))
    raise typer.Exit(1 if result.violations else 0)


@app.command()
def bench(
    url: str = typer.Option(None, help="gateway URL; default: this machine's gateway port"),
    checkouts: int = typer.Option(500, min=1), concurrency: int = typer.Option(16, min=1),
    rate: float = typer.Option(None, help="open loop: orders per second (default: closed loop)"),
    direct: str = typer.Option(None, help="host:port of the orchestrator: checkouts over gRPC, no gateway"),
    without_log: bool = typer.Option(False, "--without-log", help="the baseline: run the saga's calls from here, "
                                     "with no saga log (services at this machine's SAGASHOP_* addresses)"),
    json_out: bool = typer.Option(False, "--json", help="print the figures as JSON"),
) -> None:
    """Against a running shop: N checkouts at a concurrency; throughput, latency percentiles, time per step."""
    import aiohttp
    import httpx

    from . import bench as benchmark
    from .shopclient import ShopError

    settings = Settings()
    admin = (settings.admin_email, settings.admin_password or "")
    try:
        result = uvloop.run(benchmark.run(url or f"http://127.0.0.1:{settings.gateway_port}", admin, checkouts,
                                          concurrency, rate, direct, settings, without_log))
    except ShopError as e:  # most often: the admin's credentials (SAGASHOP_ADMIN_EMAIL / _PASSWORD)
        print(f"sagashop bench: {e}", file=sys.stderr)
        raise typer.Exit(2) from e
    except (aiohttp.ClientError, httpx.HTTPError, OSError) as e:
        print(f"sagashop bench: the shop is not answering: {e!r}", file=sys.stderr)
        raise typer.Exit(2) from e
    print(benchmark.as_json(result) if json_out else benchmark.table(result))


@app.command()
def floor(
    checkouts: int = typer.Option(1000, min=1), concurrency: int = typer.Option(16, min=1),
    rate: float = typer.Option(None, help="open loop: orders per second (default: closed loop)"),
    json_out: bool = typer.Option(False, "--json", help="print the figures as JSON"),
) -> None:
    """What the shop's parts allow here: its topology started bare (the same processes, calls, statements and
    Redis calls per checkout, no application code) on this machine's SAGASHOP_DATABASE_URL and SAGASHOP_REDIS_URL
    (or SQLite files), driven as `bench` drives the shop."""
    from .floor import run as bare

    try:
        result, done = uvloop.run(bare.run(Settings(), checkouts, concurrency, rate))
    except bare.FAILURES as e:
        print(f"sagashop floor: {e}", file=sys.stderr)
        raise typer.Exit(2) from e
    except asyncio.CancelledError as e:  # SIGINT or SIGTERM: stopped, and cleaned up
        print("sagashop floor: stopped before the end; nothing of it is left", file=sys.stderr)
        raise typer.Exit(130) from e
    print(bare.report(result, done, json_out))


@events.command()
def rebuild(part: str = typer.Argument(help="the consumer whose read models to rebuild: reporting"),
            url: str = typer.Option(None, help="gateway URL; default: this machine's gateway port")) -> None:
    """Rebuild an event consumer's read models from the event stream (as the admin: SAGASHOP_ADMIN_EMAIL and
    SAGASHOP_ADMIN_PASSWORD). Exits 1 when the shop refuses or does not answer."""
    import httpx

    from .shopclient import ShopClient, ShopError

    settings = Settings()

    async def run() -> Any:
        async with ShopClient(url or f"http://127.0.0.1:{settings.gateway_port}") as shop:
            await shop.sign_in_admin(settings.admin_email, settings.admin_password or "")
            return await shop.rebuild(part)

    try:
        done = asyncio.run(run())
    except ShopError as e:
        print(f"sagashop events rebuild: {e.detail or e}", file=sys.stderr)
        raise typer.Exit(1) from e
    except (httpx.HTTPError, OSError) as e:
        print(f"sagashop events rebuild: the shop is not answering: {e!r}", file=sys.stderr)
        raise typer.Exit(1) from e
    print(f"{done['part']}: rebuilt from {done['events']} events in {done['seconds']:.2f} s")


def main() -> None:
    try:
        app()
    except ValidationError as e:  # the environment's SAGASHOP_* variables, read by Settings()
        problems = "; ".join(f"SAGASHOP_{'_'.join(map(str, error['loc'])).upper()}: {error['msg']}"
                             for error in e.errors())
        print(f"sagashop: bad configuration: {problems}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
