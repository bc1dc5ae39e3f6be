"""The saga console's pages: whatever a saga, an operator or a fault rule carries is shown as text, never run as
markup, and the page offers what the engine and the admin API define (states, operator actions)."""

from html.parser import HTMLParser

from sagashop.saga import ABORTED, COMPENSATED, COMPENSATING, NEEDS_ATTENTION, RUNNING, SUCCEEDED
from services.gateway import console
from services.gateway.schemas import AuditEntry, Breaker, BreakerList, Fault, FaultList, Saga, SagaList, SagaStep

INJECTED = "<script>alert('owned')</script><img src=x onerror=alert(1)>"


class Page(HTMLParser):
    """The tags of a page with their attributes, and its text (entities decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def saga(state: str) -> Saga:
    at = "2024-05-01T10:00:00+00:00"
    return Saga(saga_id="s1", name="checkout", order_id="o1", route="v1",
                versions={"order": "v1", "inventory": "v1", "payment": "v1", "shipping": "v1"}, state=state,
                failure_reason=INJECTED,
                steps=[SagaStep(name="reserve_stock", action="execute", status="FAILED", attempts=1,
                                handled_by=INJECTED, error=INJECTED, started_at=at,
                                finished_at="2024-05-01T10:00:00.250000+00:00")],
                audit=[AuditEntry(action="retry", reason=INJECTED, actor="admin", at=at)], created_at=at, updated_at=at)


def only_the_console_script(page: Page) -> None:
    assert page.named("script") == [{"src": "/console/static/console.js", "defer": None}]
    assert page.named("img") == []


def test_a_saga_note_and_error_are_shown_as_text_on_its_page():
    page = Page(console.saga_page(saga(NEEDS_ATTENTION)))
    only_the_console_script(page)
    assert "".join(page.text).count(INJECTED) == 4  # failure reason, handled by, step error, operator's note
    assert "250 ms" in page.text


def test_the_overview_shows_injected_names_as_text():
    faults = FaultList(items=[Fault(service="inventory", id="f1", method=INJECTED, error=None, rate=0.5, count=None,
                                    delay_ms=0, after_commit=False, crash=None, fired=0)])
    breakers = BreakerList(items=[Breaker(part="gateway", name=INJECTED, state="open", failures=5)])
    page = Page(console.overview(SagaList(items=[saga(COMPENSATED)]), breakers, faults, state=None))
    only_the_console_script(page)
    assert "".join(page.text).count(INJECTED) == 3
    unavailable = Page(console.overview(SagaList(items=[]), f"circuit breakers unavailable: {INJECTED}",
                                        f"fault rules unavailable: {INJECTED}", state=None))
    only_the_console_script(unavailable)


def test_the_filters_are_the_engines_states_and_a_parked_saga_offers_every_operator_action():
    overview = Page(console.overview(SagaList(items=[]), BreakerList(items=[]), FaultList(items=[]), RUNNING))
    filters = [a["href"] for a in overview.named("a") if a["href"].startswith("/console?")]
    assert filters == [f"/console?state={s}" for s in
                       (RUNNING, COMPENSATING, NEEDS_ATTENTION, SUCCEEDED, COMPENSATED, ABORTED)]
    assert [b["data-action"] for b in Page(console.timeline(saga(NEEDS_ATTENTION))).named("button")] == [
        "retry", "compensate", "abort"]
    assert Page(console.timeline(saga(ABORTED))).named("button") == []
    assert Page(console.timeline(saga(COMPENSATING))).named("section")[0]["data-active"] == "true"
