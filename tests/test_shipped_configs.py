"""Recipes and experiment configs are reachable by name (installed wheel or checkout) and by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from procure_trl.configs import SHIPPED_DIR, resolve_config, shipped_names
from procure_trl.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_the_checkout_folders_show_the_shipped_files():
    # examples/ and experiments/ of a checkout are the files the wheel ships, not copies that can drift
    for kind, folder in (("recipes", "examples"), ("experiments", "experiments")):
        for name in shipped_names(kind):
            assert (ROOT / folder / f"{name}.yaml").resolve() == (SHIPPED_DIR / kind / f"{name}.yaml").resolve()
    assert {"cpu_smoke", "procure_qlora"} <= set(shipped_names("recipes"))
    assert {
        "ablation", "alpha_sweep", "generalization", "lambda_sweep", "strength"
    } <= set(shipped_names("experiments"))


def test_a_name_finds_the_shipped_file_and_an_existing_path_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = SHIPPED_DIR / "recipes" / "cpu_smoke.yaml"
    assert Path(resolve_config("recipes", "cpu_smoke")) == shipped
    assert Path(resolve_config("recipes", "examples/cpu_smoke.yaml")) == shipped  # the README's spelling
    (tmp_path / "cpu_smoke.yaml").write_text("output_dir: mine\n")
    assert resolve_config("recipes", "cpu_smoke.yaml") == "cpu_smoke.yaml"  # the user's own file


def test_an_unknown_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="shipped: cpu_smoke, procure_qlora"):
        resolve_config("recipes", "cpu_smoek")
