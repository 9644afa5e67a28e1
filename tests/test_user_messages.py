"""Every message a ``procure`` user sees is ours and one line: outputs that name a file, missing model folders and
bad recipe values are one line with exit status 2; the known library messages that say nothing a user can act on
(bitsandbytes' "pip install kernels", transformers' FutureWarnings about peft's and TRL's calls, the metric's
RuntimeWarning the report already states) do not reach the terminal."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from procure_trl.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: A tqdm progress bar segment (bars are progress, not messages).
_PROGRESS = re.compile(r"\d+%\||\[\d+:\d\d[,<]|^\s*$")


def test_the_known_library_messages_are_filtered_and_nothing_else():
    from procure_trl.commands.quiet import silence_known_library_messages

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    before = list(logger.filters)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            silence_known_library_messages()
            warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6. Use x", FutureWarning,
                          stacklevel=1)
            warnings.warn("`gradient_checkpointing_enable` is deprecated and will be removed in v6. Use y",
                          FutureWarning, stacklevel=1)
            warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
        assert [str(w.message) for w in caught] == ["something else is deprecated"]
        make = lambda msg: logging.LogRecord(logger.name, logging.WARNING, __file__, 1, msg, (), None)  # noqa: E731
        assert not logger.filter(make("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please"))
        assert logger.filter(make("Failed to load something else"))
    finally:
        logger.filters[:] = before


@pytest.mark.parametrize("command", ["evaluate", "compare", "build"])
def test_an_output_folder_that_is_a_file_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    target = tmp_path / "taken"
    target.write_text("keep me")
    argv = {"evaluate": ["evaluate", "--model", str(tmp_path / "never-loaded"), "--output-dir", str(target)],
            "compare": ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output-dir", str(target)],
            "build": ["build", "--input-jsonl", str(ROOT / "tests" / "fixtures" / "engine_counterfactuals.jsonl"),
                      "--output-dir", str(target)]}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{target} is a file, not a folder" in err, err
    assert target.read_text() == "keep me"


@pytest.mark.slow  # imports TRL
def test_a_bad_recipe_value_is_named_as_a_recipe_field(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"dataset_name": "d.jsonl", "model_name_or_path": "m", "learning_rate": "fast",
                                      "use_cpu": True}))
    assert main(["train", "--config", str(recipe)]) == 2
    assert capsys.readouterr().err.startswith(
        f"procure train: error: recipe {recipe}: field learning_rate: invalid float value: 'fast';")
    assert main(["train", "--config", str(recipe), "--learning_rate", "slow"]) == 2  # a flag is named as a flag
    assert "argument --learning_rate" in capsys.readouterr().err


def _messages(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not progress bars."""
    return [part for part in re.split(r"[\r\n]", stderr) if not _PROGRESS.search(part)]


@pytest.mark.slow  # trains and evaluates the tiny model in subprocesses (about 40 s here)
def test_train_and_evaluate_print_no_library_messages(tmp_path, tiny_recipe):
    model = tmp_path / "tiny"  # what tiny_recipe saves
    recipe = tiny_recipe(output_dir=str(tmp_path / "adapter"), max_steps=1, save_strategy="no")
    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset

    dataset = tmp_path / "dataset"
    engine_rows = ROOT / "tests" / "fixtures" / "engine_counterfactuals.jsonl"
    build_counterfactual_dataset(BuildConfig(input_jsonl=str(engine_rows), output_dir=str(dataset), test_size=1.0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ALLOW_CODE_EVAL": "1"}
    commands = [["train", "--config", str(recipe)],
                # a tiny random model passes no test: no valid pair, so CCS is undefined (the metric warns)
                ["evaluate", "--model", str(model), "--adapter", str(tmp_path / "adapter"), "--limit", "2", "--n", "1",
                 "--k", "1", "--max-new-tokens", "4", "--dataset", str(dataset), "--split", "test",
                 "--output-dir", str(tmp_path / "eval"), "--allow-train-overlap"]]
    for argv in commands:
        done = subprocess.run([sys.executable, "-m", "procure_trl.cli", *argv], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert _messages(done.stderr) == [], (argv[0], done.stderr[-3000:])
    assert "CCS n/a" in done.stdout  # the report says what the warning said
