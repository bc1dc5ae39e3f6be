"""Writes docs/configuration.md from the settings class, so the page lists every SAGASHOP_* variable as the code
reads it. `python -m tools.configdoc` writes the page; `--check` exits 1 when the committed page differs."""

import sys
import types
import typing
from pathlib import Path

from pydantic.fields import FieldInfo

from sagashop.kit.settings import Settings

from .generated import write_or_check

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
COMMAND = "python -m tools.configdoc"

HEAD = f"""# Configuration

Every part reads its configuration from `SAGASHOP_*` environment variables, all in one place: the `Settings` class
of `libs/sagashop/kit/settings.py`. This page is generated from that class by `{COMMAND}`; a test fails
when they differ.

Nothing needs to be set to run the shop on one machine: by default every service keeps a SQLite file under
`.data/` and the gateway keeps its stores in memory. `sagashop up` sets a few variables for the parts it starts
(the admin password and the token key, generated once per run unless set; text log lines; each gRPC part's metrics
port). In Kubernetes the ConfigMap `sagashop-config` (`deploy/k8s/base/config.env`) holds the shared ones; see
[kubernetes.md](kubernetes.md).

| variable | type | default | meaning |
| --- | --- | --- | --- |
"""

OTHERS = (  # read by the libraries themselves, or by the tests
    ("`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`",
     "where spans go over OTLP/HTTP; the OpenTelemetry SDK reads its other standard variables itself "
     "(`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, `OTEL_RESOURCE_ATTRIBUTES`, ...); see "
     "[observability.md](observability.md)"),
    ("`GRPC_EXPERIMENTS`",
     "gRPC's own variable. When it is unset, the `sagashop` command sets it to turn gRPC's EventEngine off "
     "(`tools/cli.py`): the classic I/O manager reads a message on the thread that waits for gRPC's completions, "
     "one thread hop fewer per message; set it (even empty) to choose otherwise"),
    ("`SAGASHOP_TEST_POSTGRES_URL`, `SAGASHOP_TEST_REDIS_URL`",
     "the servers the test suite uses (default: PostgreSQL and Redis on 127.0.0.1); read by the tests only"),
)


def type_name(annotation: object) -> str:
    """The type as a user writes the value: optional types say so, literals list their values."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kept = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(kept) + (", optional" if type(None) in args else "")
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(f"`{a}`" for a in args)
    if typing.get_origin(annotation) is dict:
        return "JSON object"
    names: dict[object, str] = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, "?")


def default_of(field: FieldInfo) -> str:
    value = field.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return "`{}`"
    return f"`{value}`"


def row(name: str, field: FieldInfo) -> str:
    if not field.description:
        raise ValueError(f"Settings.{name} has no description: give it Field(description=...)")
    cells = (f"`SAGASHOP_{name.upper()}`", type_name(field.annotation), default_of(field), field.description)
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render() -> str:
    rows = [row(name, field) for name, field in Settings.model_fields.items()]
    others = [f"| {name} | {meaning} |" for name, meaning in OTHERS]
    tail = ["", "## Other variables", "", "| variable | meaning |", "| --- | --- |", *others]
    return HEAD + "\n".join(rows + tail) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(PAGE, render(), argv, command=COMMAND, source="the settings")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
