"""The saga console's HTML, rendered from templates/ with autoescape on: every value a page shows is escaped,
wherever it came from (a saga's name, an operator's note, a fault rule's method). The pages run only
static/console.js (the gateway's content security policy allows no inline script)."""

from datetime import datetime
from pathlib import Path
from typing import get_args
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from sagashop.saga import ACTIVE, NEEDS_ATTENTION, STATES
from sagashop.values import MAX_NOTE

from .schemas import BreakerList, FaultList, OperatorVerb, Saga, SagaList, SagaStep


def duration(step: SagaStep) -> str:
    if not step.finished_at:
        return "…"
    took = datetime.fromisoformat(step.finished_at) - datetime.fromisoformat(step.started_at)
    return f"{took.total_seconds() * 1000:.0f} ms"


PAGES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
PAGES.filters.update(took=duration, path_segment=lambda value: quote(value, safe=""))
PAGES.globals.update(STATES=STATES, ACTIVE=ACTIVE, NEEDS_ATTENTION=NEEDS_ATTENTION, ACTIONS=get_args(OperatorVerb),
                     MAX_NOTE=MAX_NOTE)


def login(error: str = "") -> str:
    return PAGES.get_template("login.html").render(error=error)


def overview(sagas: SagaList, breakers: BreakerList | str, faults: FaultList | str, state: str | None) -> str:
    """The sagas (of `state`, or all), with the breakers and fault rules, or why they could not be read."""
    return PAGES.get_template("overview.html").render(sagas=sagas, breakers=breakers, faults=faults, state=state)


def saga_page(saga: Saga) -> str:
    return PAGES.get_template("saga.html").render(saga=saga)


def timeline(saga: Saga) -> str:
    """The part of the saga page that is reloaded while the saga runs."""
    return PAGES.get_template("timeline.html").render(saga=saga)
