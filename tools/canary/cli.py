"""`sagashop canary`: show and shift the canary weight (v2 percent) of each part, inject mesh faults that keep the
canary's routes, or walk a canary to promotion."""

import asyncio
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from sagashop.kit.settings import Settings

from . import faults, report
from .analysis import Limits
from .files import ISTIO_DIR, CanaryError, check_cluster_only, shift
from .run import Check, Load, Plan, run
from .status import status_lines

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Show and shift the canary weight (v2 percent) of each part: the default route of "
                       "istio/<part>.yaml and the part's key of the ConfigMap in istio/canary-weights.yaml.")
Dir = Annotated[Path, typer.Option("--dir", help="the istio directory to read and rewrite")]
Context = Annotated[str | None, typer.Option("--context", help="kubectl context of the cluster")]
Apply = Annotated[bool, typer.Option(
    "--apply", help="patch the cluster too: the part's VirtualService and its key of the ConfigMap sagashop-canary")]
ClusterOnly = Annotated[bool, typer.Option(
    "--cluster-only", help="with --apply: read and patch the cluster only, never the files")]
Percent = Annotated[int, typer.Argument(min=0, max=100, help="share of the calls for v2, 0..100")]
DEFAULT = Limits()
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


class Action(StrEnum):
    abort = "abort"
    delay = "delay"
    clear = "clear"


FAULT_OPTIONS = {Action.abort: {"--percent", "--status", "--method"},
                 Action.delay: {"--percent", "--delay", "--method"}, Action.clear: set[str]()}


def run_cli(action: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return action(*args, **kwargs)
    except CanaryError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


@app.command()
def status(context: Context = None, istio_dir: Dir = ISTIO_DIR) -> None:
    """The v2 weight of every part in the files and, with --context, in that cluster's VirtualService and ConfigMap,
    with the ready pods of its v2; (differs) flags a part whose weights disagree."""
    run_cli(lambda: typer.echo("\n".join(status_lines(istio_dir, context))))


@app.command("set")
def set_(part: str, percent: Percent, apply: Apply = False, context: Context = None, istio_dir: Dir = ISTIO_DIR,
         cluster_only: ClusterOnly = False) -> None:
    """Send PERCENT of the part's calls no header pins (and, for a part sagas call, of its new sagas) to v2, the rest
    to v1. With --apply, a PERCENT above 0 is refused (exit 2) while Deployment <part>-v2 has no ready pod."""
    run_cli(shift, part, percent, istio_dir, apply, context, cluster_only=cluster_only)


@app.command()
def promote(part: str, apply: Apply = False, context: Context = None, istio_dir: Dir = ISTIO_DIR,
            cluster_only: ClusterOnly = False) -> None:
    """Send every call of the part to v2 (refused with --apply while v2 has no ready pod)."""
    run_cli(shift, part, 100, istio_dir, apply, context, cluster_only=cluster_only)


@app.command()
def rollback(part: str, apply: Apply = False, context: Context = None, istio_dir: Dir = ISTIO_DIR,
             cluster_only: ClusterOnly = False) -> None:
    """Send every call of the part back to v1."""
    run_cli(shift, part, 0, istio_dir, apply, context, cluster_only=cluster_only)


@app.command()
def fault(
    part: str,
    action: Annotated[Action, typer.Argument(help="abort: fail calls; delay: hold them; clear: remove the fault")],
    percent: Annotated[float | None, typer.Option(help="share of the calls hit, 0..100 (abort, delay)")] = None,
    status: Annotated[str | None, typer.Option(
        help="abort: the gRPC status, e.g. UNAVAILABLE (the default); for the gateway an HTTP status (503)")] = None,
    delay: Annotated[str | None, typer.Option(help="delay: how long, e.g. 2s or 500ms")] = None,
    method: Annotated[str | None, typer.Option(
        help="only calls of this gRPC method of the part, e.g. Charge (abort, delay)")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="patch the live VirtualService too")] = False,
    context: Context = None,
    istio_dir: Dir = ISTIO_DIR,
    cluster_only: ClusterOnly = False,
) -> None:
    """Inject an Istio fault into the part's VirtualService, keeping its header routes and canary weights; `clear`
    removes it. Rewrites istio/<part>.yaml; with --apply patches the live VirtualService too, each made from its own
    current routes."""
    def made() -> faults.Fault | None:
        given = {"--percent": percent, "--status": status, "--delay": delay, "--method": method}
        extra = [name for name, value in given.items() if value is not None and name not in FAULT_OPTIONS[action]]
        if extra:
            raise CanaryError(f"fault {action.value} takes no {', '.join(extra)}")
        if action is Action.clear:
            return None
        if percent is None:
            raise CanaryError(f"fault {action.value} needs --percent")
        if action is Action.abort:
            return faults.abort(part, percent, status, method)
        if delay is None:
            raise CanaryError("fault delay needs --delay, e.g. --delay 2s")
        return faults.delay(part, percent, duration(delay), method)

    def inject() -> None:
        check_cluster_only(apply, cluster_only)
        wanted = made()
        change = (lambda vs: faults.add(vs, wanted)) if wanted else faults.clear
        said = wanted.says if wanted else "no fault"
        written = None if cluster_only else faults.in_file(part, istio_dir, change)  # refusals before any change
        if apply:
            faults.in_cluster(part, context, change)
            typer.echo(f"{part}: {said} in the cluster (VirtualService {part})")
        if written:
            written[0].write_text(written[1])
            typer.echo(f"{part}: {said} ({written[0]})")

    run_cli(inject)


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
    cluster_only: ClusterOnly = False,
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
    run_cli(check_cluster_only, apply, cluster_only)
    plan = Plan(service, weights(steps), duration(interval), prometheus, istio_dir, limits, extra_intervals, apply,
                context, cluster_only)
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
