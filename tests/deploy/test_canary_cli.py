"""`sagashop canary` on copies of istio/: the weights move, nothing else in the files does."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagashop.kit.settings import PARTS
from tools.canary import files as canary
from tools.cli import app

from .manifests import ROOT


@pytest.fixture
def istio_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ROOT / "istio", tmp_path / "istio"))


def sagashop(*args: str) -> Any:
    return CliRunner().invoke(app, ["canary", *args])


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    assert len(before.splitlines()) == len(after.splitlines())
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]


def test_set_rewrites_the_two_weights_of_the_default_route_and_nothing_else(istio_dir: Path) -> None:
    before = (istio_dir / "payment.yaml").read_text()
    result = sagashop("set", "payment", "10", "--dir", str(istio_dir))
    assert result.exit_code == 0, result.output
    assert "payment: v1 90 / v2 10" in result.output
    assert changed_lines(before, (istio_dir / "payment.yaml").read_text()) == [
        ("      weight: 100", "      weight: 90"), ("      weight: 0", "      weight: 10")]


def test_promote_then_rollback_gives_back_the_file_byte_for_byte(istio_dir: Path) -> None:
    before = (istio_dir / "orchestrator.yaml").read_text()
    assert sagashop("promote", "orchestrator", "--dir", str(istio_dir)).exit_code == 0
    assert canary.file_weights("orchestrator", istio_dir) == (0, 100)
    assert sagashop("rollback", "orchestrator", "--dir", str(istio_dir)).exit_code == 0
    assert (istio_dir / "orchestrator.yaml").read_text() == before


def test_every_file_survives_a_load_and_a_dump_unchanged(istio_dir: Path) -> None:
    for path in istio_dir.glob("*.yaml"):
        service = path.stem
        if service in PARTS:
            before = path.read_text()
            canary.set_weights(service, canary.file_weights(service, istio_dir)[1], istio_dir)
            assert path.read_text() == before, path.name


def test_status_lists_every_part_with_its_file_weights(istio_dir: Path) -> None:
    canary.set_weights("shipping", 25, istio_dir)
    result = sagashop("status", "--dir", str(istio_dir))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["SERVICE", "FILE", "v1/v2"]
    assert [line.split() for line in lines[1:]] == [
        [part, "75/25" if part == "shipping" else "100/0"] for part in PARTS]


def test_status_with_a_context_compares_the_files_with_the_cluster(istio_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    live = [{"metadata": {"name": "payment"}, "spec": {"http": [{"route": [
        {"destination": {"host": "payment", "subset": "v1"}, "weight": 80},
        {"destination": {"host": "payment", "subset": "v2"}, "weight": 20}]}]}}]
    asked: list[tuple[str, ...]] = []

    def kubectl(*args: str, context: str | None = None) -> str:
        asked.append((*args, f"context={context}"))
        return json.dumps({"items": live})

    monkeypatch.setattr(canary, "kubectl", kubectl)
    result = sagashop("status", "--context", "kind-sagashop", "--dir", str(istio_dir))
    assert result.exit_code == 0, result.output
    assert asked == [("get", "virtualservice", "-n", "sagashop", "-o", "json", "context=kind-sagashop")]
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:]}
    assert rows["payment"] == ["100/0", "80/20", "(differs)"]
    assert rows["user"] == ["100/0", "-"]


def test_apply_hands_the_file_to_kubectl_and_pins_that_share_of_new_sagas(istio_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, ...]] = []
    monkeypatch.setattr(canary, "kubectl",
                        lambda *args, context=None: asked.append((*args, context)) or "applied")
    result = sagashop("set", "inventory", "50", "--apply", "--context", "kind-sagashop", "--dir", str(istio_dir))
    assert result.exit_code == 0, result.output
    assert asked == [("apply", "-f", str(istio_dir / "inventory.yaml"), "kind-sagashop"),
                     ("set", "env", "deployment", "-l", "app=orchestrator", "-n", "sagashop",
                      "SAGASHOP_CANARY_PERCENT=50", "kind-sagashop")]


@pytest.mark.parametrize("args", [["set", "billing", "10"], ["promote", "postgres"], ["rollback", "faults"]])
def test_an_unknown_service_is_refused_with_exit_code_2(istio_dir: Path, args: list[str]) -> None:
    before = {p: p.read_text() for p in istio_dir.rglob("*.yaml")}
    result = sagashop(*args, "--dir", str(istio_dir))
    assert result.exit_code == 2
    assert "unknown service" in result.output
    assert {p: p.read_text() for p in istio_dir.rglob("*.yaml")} == before


@pytest.mark.parametrize("percent", ["101", "-1", "ten"])
def test_a_percent_outside_0_to_100_is_refused_with_exit_code_2(istio_dir: Path, percent: str) -> None:
    result = sagashop("set", "payment", percent, "--dir", str(istio_dir))
    assert result.exit_code == 2
    assert canary.file_weights("payment", istio_dir) == (100, 0)


def test_set_weights_refuses_a_percent_outside_0_to_100(istio_dir: Path) -> None:
    with pytest.raises(canary.CanaryError, match="within 0..100"):
        canary.set_weights("payment", 120, istio_dir)
