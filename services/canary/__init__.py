"""`sagashop canary`: the Istio canary weights of each part (files.py), and progressive delivery judged on the
sagas' outcomes in Prometheus (run.py, analysis.py, load.py, report.py)."""

from sagashop.kit.settings import PARTS

from . import files
from .cli import app
from .files import CanaryError, file_weights, set_weights, shift

__all__ = ["PARTS", "CanaryError", "app", "file_weights", "files", "set_weights", "shift"]
