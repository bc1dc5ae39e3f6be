"""A page of docs/ generated from the code (configdoc.py, eventsdoc.py): written, or with `--check` compared."""

import sys
from pathlib import Path


def write_or_check(page: Path, text: str, argv: list[str], *, command: str, source: str) -> int:
    """Writes `text` to `page`; with `--check` in `argv`, exit code 1 (and a message) when the page differs."""
    if "--check" in argv:
        if not page.exists() or page.read_text() != text:
            print(f"{page} is not what {source} say: run `{command}`", file=sys.stderr)
            return 1
        return 0
    page.write_text(text)
    return 0
