"""The reporting context's rules: which days a report covers, and what each event adds to the read models. Every
change an event makes is an addition (or a subtraction) to a count keyed by the event's own day, so events applied
in any order, once each, leave the same totals."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sagashop.kit.clock import now
from sagashop.kit.errors import Invalid

MAX_DAYS = 366  # a report's range at most: a year, a leap year's included
APPROVED, CANCELLED, REJECTED = "approved", "cancelled", "rejected"
# what a compensation undid, by the event that says so
STOCK_RELEASED, PAYMENT_REFUNDED, SHIPMENT_CANCELLED = "stock_released", "payment_refunded", "shipment_cancelled"


@dataclass(frozen=True)
class Sales:
    sku: str
    currency: str
    units: int
    revenue_cents: int


@dataclass(frozen=True)
class Report:
    from_day: date
    to_day: date
    as_of: datetime | None
    items: list[Sales]
    approved: int = 0
    cancelled: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # failure_reason -> orders
    compensations: dict[str, int] = field(default_factory=dict)  # kind -> how many


def day_of(moment: datetime) -> date:
    """The UTC day an event happened on: the day its counts go to."""
    return moment.astimezone(now().tzinfo).date()


def report_range(from_day: str, to_day: str) -> tuple[date, date]:
    """The days of a report, both inclusive (today, UTC, where one is empty)."""
    today = now().date()
    first, last = _day(from_day, "from_day") if from_day else today, _day(to_day, "to_day") if to_day else today
    if first > last:
        raise Invalid(f"from_day ({first}) is after to_day ({last})")
    if last - first >= timedelta(days=MAX_DAYS):
        raise Invalid(f"a report covers at most {MAX_DAYS} days")
    return first, last


def _day(text: str, name: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{name} must be a day as YYYY-MM-DD, not {text[:40]!r}") from None
