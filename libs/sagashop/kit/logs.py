"""Logging set-up shared by every part."""

import logging
import sys


def configure(part: str, level: str = "INFO") -> None:
    logging.basicConfig(
        stream=sys.stderr, level=level.upper(), force=True,
        format=f"%(asctime)s %(levelname)s {part} %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
