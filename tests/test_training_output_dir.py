"""``procure train`` never replaces a trained model or restarts over checkpoints without being told
(``--overwrite_output_dir`` / ``--resume_from_checkpoint``), and refuses a run that would take no optimizer step."""

from __future__ import annotations

import json
import os

import pytest

from procure_trl.cli import main

pytestmark = pytest.mark.slow  # imports TRL and trains a tiny model for a few steps


@pytest.fixture
def recipe(tmp_path, tiny_recipe):
    return tiny_recipe(output_dir=str(tmp_path / "out"), max_steps=2, save_strategy="steps", save_steps=1)


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("procure train")]
    assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
    return lines[0]


def test_a_trained_output_dir_is_replaced_or_resumed_only_when_asked(tmp_path, recipe, capsys):
    adapter = tmp_path / "out" / "adapter_model.safetensors"
    assert main(["train", "--config", recipe]) == 0
    trained = adapter.read_bytes()
    capsys.readouterr()

    assert main(["train", "--config", recipe]) == 2
    line = _error(capsys)
    assert "already holds a trained model" in line and "--overwrite_output_dir" in line
    assert "--resume_from_checkpoint" in line and adapter.read_bytes() == trained

    checkpoint = tmp_path / "out" / "checkpoint-1"
    assert main(["train", "--config", recipe, "--resume_from_checkpoint", str(checkpoint), "--max_steps", "3"]) == 0
    state = json.loads((tmp_path / "out" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and adapter.read_bytes() != trained  # continued from step 1, then saved
    resumed = adapter.read_bytes()

    assert main(["train", "--config", recipe, "--overwrite_output_dir", "true", "--seed", "7"]) == 0
    assert adapter.read_bytes() != resumed


def test_checkpoints_of_an_unfinished_training_are_not_trained_over(tmp_path, recipe, capsys):
    checkpoint = tmp_path / "out" / "checkpoint-4"
    os.makedirs(checkpoint)
    (checkpoint / "trainer_state.json").write_text("{}")
    assert main(["train", "--config", recipe]) == 2
    assert f"--resume_from_checkpoint {checkpoint}" in _error(capsys)


def test_no_optimizer_step_is_refused_before_anything_loads(tmp_path, recipe, capsys):
    assert main(["train", "--config", recipe, "--max_steps", "-1", "--num_train_epochs", "0"]) == 2
    assert "make no optimizer step" in _error(capsys)
    assert not (tmp_path / "out").exists()


def test_every_row_dropped_by_max_length_is_one_line_naming_it(tmp_path, recipe, capsys):
    assert main(["train", "--config", recipe, "--max_length", "1"]) == 2
    line = _error(capsys)
    assert "no training row is left after truncation to max_length=1" in line
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
