"""The house's three floors, read from the imports: tools/ -> services/ -> libs/sagashop/, each importing only
downward, and a pod's `sagashop serve` loads nothing of the lab."""

import ast
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from sagashop.kit.settings import PARTS

ROOT = Path(__file__).resolve().parents[2]
LIBS = ROOT / "libs"
# What tools/ may import of services/: a part's composition root, and the saga definitions (read-only).
TOOLS_MAY_IMPORT = {*(f"services.{part}.main" for part in PARTS), "services.orchestrator.checkout"}
LAB_DEPENDENCIES = ("aiohttp", "httpx", "ruamel")  # the `lab` extra: never loaded by a deployed part


def module_of(path: Path) -> str:
    base = LIBS if path.is_relative_to(LIBS) else ROOT
    return ".".join(path.relative_to(base).with_suffix("").parts).removesuffix(".__init__")


def package_of(path: Path) -> str:
    return module_of(path) if path.name == "__init__.py" else module_of(path).rpartition(".")[0]


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module `path` imports, relative imports made absolute, with its line."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package_of(path).rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, (base, node.module)))
            yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)


def violations(floor: str, allowed: Callable[[str], bool]) -> list[str]:
    found = []
    for path in sorted((LIBS / "sagashop" if floor == "libs" else ROOT / floor).rglob("*.py")):
        for line, module in imports(path):
            if not allowed(module):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def test_libs_import_neither_services_nor_tools() -> None:
    assert violations("libs", lambda m: not under(m, "services", "tools")) == []


def test_services_never_import_tools() -> None:
    assert violations("services", lambda m: not under(m, "tools")) == []


def test_tools_reach_services_only_through_a_main_or_the_saga_definitions() -> None:
    def allowed(module: str) -> bool:
        return not under(module, "services") or any(under(module, m) for m in TOOLS_MAY_IMPORT)

    assert violations("tools", allowed) == []


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text("from services.orchestrator import steps\nimport tools.bench\n")
    assert [m for _, m in imports(source)] == ["services.orchestrator.steps", "tools.bench"]


def test_a_pod_serving_a_part_loads_nothing_of_the_lab() -> None:
    """What `sagashop serve PART` imports: the command's entry, then the part's main (all parts at once here: if
    together they load nothing of the lab, neither does any one of them)."""
    mains = "; ".join(f"importlib.import_module('services.{part}.main')" for part in PARTS)
    probe = f"import sys, json, importlib, tools.cli; {mains}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True,
                                       text=True).stdout)
    assert [m for m in loaded if under(m, "tools")] == ["tools", "tools.cli"]
    assert [m for m in loaded if under(m, *LAB_DEPENDENCIES)] == []
