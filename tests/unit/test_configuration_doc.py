"""docs/configuration.md is generated from the settings class and cannot drift from it."""

from pathlib import Path

import pytest

from sagashop.kit.settings import Settings
from tools import configdoc

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_page_is_what_the_settings_class_generates():
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == configdoc.render(), "docs/configuration.md is stale: run `python -m tools.configdoc`"


def test_the_configuration_page_lists_every_setting_with_a_description():
    page = configdoc.render()
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
        assert f"`SAGASHOP_{name.upper()}`" in page


def test_a_setting_without_a_description_stops_the_generator():
    field = Settings.model_fields["log_level"]
    with pytest.raises(ValueError, match="log_level"):
        configdoc.row("log_level", type(field)(annotation=str, default="INFO"))


def test_the_check_mode_fails_on_a_stale_page(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(configdoc, "PAGE", tmp_path / "configuration.md")
    configdoc.PAGE.write_text("stale\n")
    assert configdoc.main(["--check"]) == 1
    assert "python -m tools.configdoc" in capsys.readouterr().err
    assert configdoc.main([]) == 0
    assert configdoc.main(["--check"]) == 0
