"""Logging set-up shared by every part: one JSON object per line (time, level, part, logger, message, and what the
line is about: trace_id and span_id of the current span, saga_id, order_id, request_id), or one readable line
each, coloured on a terminal."""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from opentelemetry import trace

# set by the saga runner (for the run of one saga) and the gateway's edge middleware (for one request)
saga_id: ContextVar[str] = ContextVar("sagashop_saga_id", default="")
order_id: ContextVar[str] = ContextVar("sagashop_order_id", default="")
request_id: ContextVar[str] = ContextVar("sagashop_request_id", default="")
COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


def context() -> dict[str, str]:
    """What the current line is about, as far as it is known here."""
    span = trace.get_current_span().get_span_context()
    found: dict[str, str] = {}
    if span.is_valid:
        found.update(trace_id=trace.format_trace_id(span.trace_id), span_id=trace.format_span_id(span.span_id))
    found.update((var.name.removeprefix("sagashop_"), value) for var in (saga_id, order_id, request_id)
                 if (value := var.get()))
    return found


class JsonFormatter(logging.Formatter):
    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "part": self.part, "logger": record.name, "message": record.getMessage(),
                **context()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`12:00:00.123 INFO  part logger: message  saga_id=... trace_id=...`, the level coloured on a terminal."""

    def __init__(self, part: str, colour: bool) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(level)s " + part + " %(name)s: %(message)s%(about)s", "%H:%M:%S")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname:<5}"
        record.level = f"\x1b[{COLOURS.get(record.levelname, '0')}m{level}\x1b[0m" if self.colour else level
        about = " ".join(f"{key}={value}" for key, value in context().items() if key != "span_id")
        record.about = f"  {about}" if about else ""
        return super().format(record)


def configure(part: str, level: str = "INFO", log_format: str | None = None) -> None:
    """Logs of this process to stderr: "json" or "text"; None picks text on a terminal, JSON elsewhere."""
    terminal = sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    text = log_format == "text" or (log_format is None and terminal)
    handler.setFormatter(TextFormatter(part, colour=terminal) if text else JsonFormatter(part))
    logging.basicConfig(handlers=[handler], level=level.upper(), force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
