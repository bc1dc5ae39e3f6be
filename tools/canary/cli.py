"""`sagashop canary`: show and shift the Istio canary weights (v1 / v2) of each part, or walk a canary to promotion."""

import asyncio
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from sagashop.kit.settings import Settings

from . import report
from .analysis import Limits
from .files import ISTIO_DIR, CanaryError, cluster_weights, shift, status_lines
from .run import Check, Load, Plan, run

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Show and shift the Istio canary weights (v1 / v2) of each part: istio/<part>.yaml.")
Dir = Annotated[Path, typer.Option("--dir", help="the istio directory to read and rewrite")]
Context = Annotated[str | None, typer.Option("--context", help="kubectl context of the cluster")]
Apply = Annotated[bool, typer.Option("--apply", help="then `kubectl apply -f` the file")]
Percent = Annotated[int, typer.Argument(min=0, max=100, help="share of the calls for v2, 0..100")]
DEFAULT = Limits()
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


def run_cli(action: Any, *args: Any) -> Any:
    try:
        return action(*args)
    except CanaryError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


@app.command()
def status(context: Context = None, istio_dir: Dir = ISTIO_DIR) -> None:
    """The v1 / v2 weights of every part in the files (and, with --context, in that cluster)."""
    run_cli(lambda: typer.echo("\n".join(status_lines(istio_dir, cluster_weights(context) if context else None))))


@app.command("set")
def set_(service: str, percent: Percent, apply: Apply = False, context: Context = None,
         istio_dir: Dir = ISTIO_DIR) -> None:
    """Send PERCENT of the service's calls to v2 and the rest to v1."""
    run_cli(shift, service, percent, istio_dir, apply, context)


@app.command()
def promote(service: str, apply: Apply = False, context: Context = None, istio_dir: Dir = ISTIO_DIR) -> None:
    """Send every call of the service to v2."""
    run_cli(shift, service, 100, istio_dir, apply, context)


@app.command()
def rollback(service: str, apply: Apply = False, context: Context = None, istio_dir: Dir = ISTIO_DIR) -> None:
    """Send every call of the service back to v1."""
    run_cli(shift, service, 0, istio_dir, apply, context)


def weights(value: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(step) for step in value.split(","))
    except ValueError as e:
        raise typer.BadParameter(f"comma-separated percents, not {value!r}") from e
    if not all(0 < step <= 100 for step in steps) or list(steps) != sorted(set(steps)):
        raise typer.BadParameter(f"rising percents within 1..100, not {value!r}")
    return steps


def duration(value: str) -> float:
    """`90`, `90s`, `1.5m`, `500ms`, `1h` in seconds."""
    match = DURATION.match(value.strip())
    if not match or float(match[1]) <= 0:
        raise typer.BadParameter(f"a positive duration such as 60s, 2m or 90, not {value!r}")
    return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match[2]]


@app.command("run")
def run_(
    service: str,
    steps: Annotated[str, typer.Option(help="canary weights in percent, rising, one step each")] = "10,25,50,100",
    interval: Annotated[str, typer.Option(help="how long each step runs before it is judged")] = "60s",
    prometheus: Annotated[str, typer.Option(
        help="Prometheus that scrapes the orchestrators and the sidecars")] = "http://127.0.0.1:9090",
    min_sagas: Annotated[int, typer.Option(min=1, help="canary sagas a step must see end")] = DEFAULT.min_sagas,
    max_compensation_excess: Annotated[float, typer.Option(
        min=0, help="percentage points the canary's compensation rate may exceed stable's by")
    ] = DEFAULT.max_compensation_excess,
    max_unavailable_rate: Annotated[float, typer.Option(
        min=0, max=100, help="percent of canary sagas compensated for <service>_unavailable")
    ] = DEFAULT.max_unavailable_rate,
    max_p99_ratio: Annotated[float, typer.Option(
        min=1, help="canary p99 step latency / stable's")] = DEFAULT.max_p99_ratio,
    p99_floor: Annotated[float, typer.Option(
        min=0, help="seconds: a canary p99 at or under this always passes")] = DEFAULT.p99_floor,
    max_parked: Annotated[int, typer.Option(min=0, help="canary sagas parked in a step")] = DEFAULT.max_parked,
    min_requests: Annotated[int, typer.Option(
        min=1, help="canary requests (Istio) a step must see")] = DEFAULT.min_requests,
    max_error_excess: Annotated[float, typer.Option(
        min=0, help="percentage points the canary's request error rate may exceed stable's by")
    ] = DEFAULT.max_error_excess,
    max_request_p99_ratio: Annotated[float, typer.Option(
        min=1, help="canary p99 request latency / stable's")] = DEFAULT.max_request_p99_ratio,
    request_p99_floor: Annotated[float, typer.Option(
        min=0, help="milliseconds: a canary p99 request latency at or under this always passes")
    ] = DEFAULT.request_p99_floor,
    extra_intervals: Annotated[int, typer.Option(
        min=0, help="more intervals a step with too few canary sagas or requests is watched before the run gives up")
    ] = 2,
    load: Annotated[float, typer.Option(min=0, help="orders per second through the gateway meanwhile (0: none)")] = 0,
    url: Annotated[str | None, typer.Option(help="gateway URL; default: this machine's gateway port")] = None,
    load_sku: Annotated[str | None, typer.Option(help="product the load orders; default: the most stocked")] = None,
    apply: Annotated[bool, typer.Option(
        "--apply", help="shift each weight in the cluster too, and roll back when v2 has no ready pods")] = False,
    context: Context = None,
    istio_dir: Dir = ISTIO_DIR,
    json_out: Annotated[bool, typer.Option("--json", help="print the figures and the decision as JSON")] = False,
) -> None:
    """Shift the service's canary weight step by step; after each step's interval, compare the canary's saga outcomes
    (saga parts) and Istio request figures with the stable version's over the step, in Prometheus. Promote (weight
    100, exit 0) when every step was healthy; roll back (weight 0, exit 1) at the first that is not, or that saw too
    few canary sagas or requests, and on SIGINT, SIGTERM or SIGHUP. Exit 2 when it cannot start."""
    limits = Limits(min_sagas, max_compensation_excess, max_unavailable_rate, max_p99_ratio, p99_floor, max_parked,
                    min_requests, max_error_excess, max_request_p99_ratio, request_p99_floor)
    plan = Plan(service, weights(steps), duration(interval), prometheus, istio_dir, limits, extra_intervals, apply,
                context)
    traffic = Load(url or f"http://127.0.0.1:{Settings().gateway_port}", load, load_sku) if load else None

    def say(text: str) -> None:
        typer.echo(text, err=json_out)

    def on_check(check: Check) -> None:
        say(report.row(check) if checks else f"{report.header()}\n{report.row(check)}")
        checks.append(check)

    checks: list[Check] = []
    outcome = run_cli(asyncio.run, run(plan, traffic, on_check, say))
    typer.echo(report.as_json(plan, outcome) if json_out else "\n".join(report.decision(plan, outcome)))
    raise typer.Exit(0 if outcome.promoted else 1)
