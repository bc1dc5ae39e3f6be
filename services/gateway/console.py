"""The saga console's HTML: the page shell in templates/console.html around the fragments made here. Every value is
escaped; the page runs only static/console.js (the gateway's content security policy allows no inline script)."""

from datetime import datetime
from html import escape
from pathlib import Path
from string import Template
from urllib.parse import quote

from .schemas import BreakerList, FaultList, Saga, SagaList, SagaStep

PAGE = Template((Path(__file__).parent / "templates" / "console.html").read_text())
STATES = ("RUNNING", "COMPENSATING", "NEEDS_ATTENTION", "SUCCEEDED", "COMPENSATED", "ABORTED")
ACTIVE = ("RUNNING", "COMPENSATING")
ACTIONS = ("retry", "compensate", "abort")  # what an operator may do with a parked saga


def page(title: str, body: str, *, signed_in: bool = True) -> str:
    nav = '<button id="logout" type="button">Sign out</button>' if signed_in else ""
    return PAGE.substitute(title=escape(title), nav=nav, body=body)


def table(css: str, headings: tuple[str, ...], rows: list[list[str]], empty: str) -> str:
    """A table of cells that are HTML already (escape the values first)."""
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def login(error: str = "") -> str:
    return page("Sign in", f"""
<form id="login" method="post" class="login">
  <h1>Sign in as an administrator</h1>
  <label>Email <input id="email" name="email" type="email" autocomplete="username" required></label>
  <label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
  <p id="login-error" class="error">{escape(error)}</p>
</form>""", signed_in=False)


def state_badge(state: str) -> str:
    return f'<span class="state {escape(state.lower())}">{escape(state)}</span>'


def saga_link(saga_id: str) -> str:
    return f'<a href="/console/sagas/{quote(saga_id, safe="")}">{escape(saga_id)}</a>'


def overview(sagas: SagaList, breakers: BreakerList | str, faults: FaultList | str, state: str | None) -> str:
    filters = " ".join(f'<a href="/console?state={s}"{" class=current" if s == state else ""}>{s}</a>'
                       for s in STATES)
    rows = [[saga_link(s.saga_id), escape(s.name), escape(s.order_id), state_badge(s.state), escape(s.route),
             escape(s.failure_reason or ""), escape(s.updated_at)] for s in sagas.items]
    return page("Sagas", f"""
<h1>Sagas</h1>
<nav class="filters"><a href="/console"{"" if state else " class=current"}>all</a> {filters}</nav>
{table("sagas", ("saga", "name", "order", "state", "route", "failure reason", "updated"), rows, "no sagas")}
<h2>Circuit breakers</h2>
{breakers_table(breakers)}
<h2>Fault rules</h2>
{faults_table(faults)}""")


def breakers_table(breakers: BreakerList | str) -> str:
    if isinstance(breakers, str):
        return f'<p class="error">{escape(breakers)}</p>'
    rows = [[escape(b.part), escape(b.name), state_badge(b.state), str(b.failures)] for b in breakers.items]
    return table("breakers", ("part", "dependency", "state", "failures"), rows, "no circuit breakers yet")


def faults_table(faults: FaultList | str) -> str:
    if isinstance(faults, str):
        return f'<p class="error">{escape(faults)}</p>'
    rows = [[escape(f.service), escape(f.method), escape(f.error or "delay"), f"{f.rate:g}",
             "∞" if f.count is None else str(f.count), str(f.delay_ms), "yes" if f.after_commit else "",
             escape(f.crash or ""), str(f.fired)] for f in faults.items]
    return table("faults", ("service", "method", "error", "rate", "count", "delay ms", "after commit", "crash",
                            "fired"), rows, "no fault rules")


def saga_page(saga: Saga) -> str:
    return page(f"Saga {saga.saga_id}", f"""
<p><a href="/console">← all sagas</a></p>
<h1>{escape(saga.name)} saga {escape(saga.saga_id)}</h1>
{timeline(saga)}""")


def timeline(saga: Saga) -> str:
    """The part of the saga page that is reloaded while the saga runs."""
    active = "true" if saga.state in ACTIVE else "false"
    steps = [[escape(s.name), f'<span class="action {s.action}">{s.action}</span>', state_badge(s.status),
              str(s.attempts), escape(s.handled_by), escape(s.started_at), duration(s), escape(s.error or "")]
             for s in saga.steps]
    audit = [[escape(a.at), escape(a.action), escape(a.actor), escape(a.reason)] for a in saga.audit]
    return f"""<section id="timeline" data-saga="{escape(saga.saga_id)}" data-active="{active}">
<dl class="facts">
  <dt>state</dt><dd>{state_badge(saga.state)}</dd><dt>order</dt><dd>{escape(saga.order_id)}</dd>
  <dt>route</dt><dd>{escape(saga.route)}</dd><dt>failure reason</dt><dd>{escape(saga.failure_reason or "")}</dd>
  <dt>created</dt><dd>{escape(saga.created_at)}</dd><dt>updated</dt><dd>{escape(saga.updated_at)}</dd>
</dl>
{operate(saga) if saga.state == "NEEDS_ATTENTION" else ""}
<h2>Timeline</h2>
{table("steps", ("step", "action", "status", "attempts", "handled by", "started", "took", "error"), steps,
       "no step has started yet")}
<h2>Audit</h2>
{table("audit", ("at", "action", "actor", "reason"), audit, "no operator has acted on this saga")}
</section>"""


def operate(saga: Saga) -> str:
    buttons = "".join(f'<button type="button" data-action="{a}" data-saga="{escape(saga.saga_id)}">{a}</button>'
                      for a in ACTIONS)
    return f"""<div class="operate"><p>This saga is parked: an operator decides what happens next.</p>
<label>Reason <input id="reason" maxlength="500"></label> {buttons} <span id="operate-result"></span></div>"""


def duration(step: SagaStep) -> str:
    if not step.finished_at:
        return "…"
    took = datetime.fromisoformat(step.finished_at) - datetime.fromisoformat(step.started_at)
    return f"{took.total_seconds() * 1000:.0f} ms"
