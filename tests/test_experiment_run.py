"""``procure experiment --smoke`` end to end on a small experiment: a dataset built by the engine, three variants
trained and evaluated with the tiny local model, one of which fails; the table, the comparison and the plots; a
rerun that skips every finished run; a finished run whose training settings changed is refused, not retrained."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from procure_trl.cli import main

pytestmark = pytest.mark.slow  # builds a dataset, trains three tiny models (about a minute here)


def _experiment(tmp_path, sft_lambda: float = 0.0, max_new_tokens: int = 4) -> str:
    data = {
        "name": "tiny-ablation",
        "output_dir": str(tmp_path / "exp"),
        "datasets": {"he": {"benchmarks": "humaneval", "test_size": 0.5}},
        "training": {"model_name_or_path": "not/used-under-smoke", "use_peft": True, "lora_r": 4, "lora_alpha": 8},
        "evaluation": {"n": 2, "k": [1]},
        "variants": [
            {"name": "sft", "training": {"concept_loss_weight": sft_lambda, "perturbed_token_weight": 0.0}},
            {"name": "procure", "training": {"concept_loss_weight": 0.1}},
            # parses, but the tiny model has 2 layers: fails when the trainer is built
            {"name": "broken", "training": {"attention_layers": "0,7"}},
        ],
        "smoke": {"build": {"limit": 6}, "training": {"max_steps": 1, "max_length": 256},
                  "evaluation": {"limit": 1, "max_new_tokens": max_new_tokens, "n": 1, "num_workers": 1}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _mtimes(run_dir) -> dict[str, float]:
    return {name: os.path.getmtime(os.path.join(run_dir, name))
            for name in ("train/adapter_model.safetensors", "evaluation/report.json")}


def test_smoke_experiment_runs_resumes_and_reports_failures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    config = _experiment(tmp_path)
    out = tmp_path / "exp-smoke"

    assert main(["experiment", "--config", config, "--smoke"]) == 1  # one run failed
    first = capsys.readouterr().out
    assert "[broken/seed-0] FAILED:" in first and "out of range for a model with 2 decoder layers" in first
    report = json.loads((out / "experiment.json").read_text())
    states = {run["variant"]: run["state"] for run in report["runs"]}
    assert states == {"sft": "done", "procure": "done", "broken": "failed"}
    assert report["varying"][:2] == ["concept_loss_weight", "perturbed_token_weight"]
    table = (out / "experiment.md").read_text()
    assert "| sft | 0 | 0.000 | 0.000 |" in table and "| procure | 0 | 0.100 | 1.000 |" in table
    assert "## Failed runs (1)" in table and "`broken` seed 0" in table
    comparison = json.loads((out / "comparison" / "comparison.json").read_text())
    assert [run["label"] for run in comparison["runs"]] == ["sft", "procure"]
    assert (out / "scores.png").stat().st_size > 0 and (out / "training_loss.png").stat().st_size > 0
    for name in ("sft", "procure"):
        run = out / "runs" / name / "seed-0"
        status = json.loads((run / "status.json").read_text())
        assert status["train"]["state"] == status["evaluate"]["state"] == "done"
        assert status["train"]["steps"] == 1 and status["train"]["history"][0]["loss"] > 0
        # the run's recipe is a procure train recipe on the dataset's train split
        recipe = yaml.safe_load((run / "recipe.yaml").read_text())
        assert recipe["dataset_train_split"] == "train" and recipe["output_dir"] == str(run / "train")
        evaluated = json.loads((run / "evaluation" / "report.json").read_text())["config"]
        assert evaluated["split"] == "test" and evaluated["adapter"] == str(run / "train")
    before = {name: _mtimes(out / "runs" / name / "seed-0") for name in ("sft", "procure")}

    assert main(["experiment", "--config", config, "--smoke"]) == 1  # the broken run is retried and fails again
    second = capsys.readouterr().out
    for name in ("sft", "procure"):
        assert f"[{name}/seed-0] finished earlier: skipped" in second
        assert f"[{name}/seed-0] training" not in second and f"[{name}/seed-0] evaluating" not in second
        assert _mtimes(out / "runs" / name / "seed-0") == before[name]
    assert "[broken/seed-0] training" in second and "[broken/seed-0] FAILED:" in second
    assert "dataset he: using" in second  # the dataset is built once

    # a finished run is never retrained silently with other settings
    assert main(["experiment", "--config", _experiment(tmp_path, sft_lambda=0.5), "--smoke"]) == 1
    third = capsys.readouterr().out
    assert "[sft/seed-0] FAILED:" in third and "concept_loss_weight: 0.0 -> 0.5" in third
    assert "[procure/seed-0] finished earlier: skipped" in third
    assert _mtimes(out / "runs" / "sft" / "seed-0") == before["sft"]

    # other evaluation settings: the finished adapters are evaluated again, not retrained
    assert main(["experiment", "--config", _experiment(tmp_path, max_new_tokens=5), "--smoke"]) == 1
    fourth = capsys.readouterr().out
    for name in ("sft", "procure"):
        assert f"[{name}/seed-0] evaluation settings changed: evaluating again" in fourth
        assert f"[{name}/seed-0] training" not in fourth
        after = _mtimes(out / "runs" / name / "seed-0")
        assert after["train/adapter_model.safetensors"] == before[name]["train/adapter_model.safetensors"]
        assert after["evaluation/report.json"] > before[name]["evaluation/report.json"]
        report = json.loads((out / "runs" / name / "seed-0" / "evaluation" / "report.json").read_text())
        assert report["config"]["max_new_tokens"] == 5


def test_a_bad_value_in_any_variant_stops_the_experiment_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    data = {
        "output_dir": str(tmp_path / "exp"),
        "datasets": {"d": str(tmp_path / "dataset")},
        "training": {"model_name_or_path": "m", "bf16": False},  # a CPU has no bf16
        "variants": [{"name": "fine", "training": {"concept_loss_weight": 0.1}},
                     {"name": "negative", "training": {"concept_loss_weight": -1}}],
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["experiment", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "variant 'negative'" in err and "concept_loss_weight" in err
    assert not (tmp_path / "exp" / "runs").exists()
