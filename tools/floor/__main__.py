"""One part of the floor: python -m tools.floor PART CONFIG LOG_DIR."""

import json
import logging
import sys
from pathlib import Path

import uvloop

from .parts import serve_part

logging.basicConfig(filename=Path(sys.argv[3]) / f"{sys.argv[1]}.log", level=logging.WARNING)
try:
    uvloop.run(serve_part(sys.argv[1], json.loads(sys.argv[2])))
except Exception:
    logging.exception("the floor's %s failed", sys.argv[1])
    raise
