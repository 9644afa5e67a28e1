"""Baselines that separate the data from the loss: SFT on the original programs only (``train_on: originals``) and
the untuned base model, as rows of the ablation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from procure_trl.training.data import is_original_row, keep_originals

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_originals_are_kept_by_concept_or_else_by_their_empty_changes():
    from datasets import Dataset

    rows = Dataset.from_list([
        {"concept": "original", "changed_spans": [], "prompt": "a"},
        {"concept": "name_random", "changed_spans": [[0, 1]], "prompt": "b"},
        {"concept": "original", "changed_spans": [], "prompt": "c"},
    ])
    kept = keep_originals(rows, spans_column="changed_spans", mask_column="perturbation_mask")
    assert kept["prompt"] == ["a", "c"]
    assert is_original_row({"changed_spans": []}, spans_column="changed_spans", mask_column="m")
    assert not is_original_row({"changed_spans": [[1, 2]]}, spans_column="changed_spans", mask_column="m")
    assert not is_original_row({"input_ids": [1, 2], "m": [0, 1]}, spans_column="changed_spans", mask_column="m")
    with pytest.raises(ValueError, match="train_on='originals' but the train dataset holds no original"):
        keep_originals(rows.select([1]), spans_column="changed_spans", mask_column="perturbation_mask")


def test_train_on_takes_two_values():
    from procure_trl.training.config import ConceptAwareSFTConfig

    common = dict(output_dir="out", bf16=False, use_cpu=True, report_to=[])
    assert ConceptAwareSFTConfig(train_on="originals", **common).train_on == "originals"
    with pytest.raises(ValueError, match="train_on='counterfactuals' is not one of all, originals"):
        ConceptAwareSFTConfig(train_on="counterfactuals", **common)


@pytest.mark.slow  # builds a dataset, trains two tiny models, evaluates three runs (about a minute here)
def test_the_ablation_smoke_runs_its_untuned_and_originals_only_rows(tmp_path, monkeypatch):
    from procure_trl.dataset.rows import load_dataset_split
    from procure_trl.experiments import load_experiment, run_experiment
    from procure_trl.provenance import TRAINING_DATA_FILE

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    config = load_experiment(str(EXPERIMENTS / "ablation.yaml"))
    config = dataclasses.replace(config, output_dir=str(tmp_path / "ablation"),
                                 variants=[v for v in config.variants if v.name in ("sft", "untuned", "sft-originals")])
    config.smoke.evaluation["limit"] = 1
    result = run_experiment(config.smoke_version(), smoke=True)
    assert [(o.plan.variant.name, o.state) for o in result.outcomes] == [
        ("sft", "done"), ("untuned", "done"), ("sft-originals", "done")]
    out = Path(result.config.output_dir)
    dataset = str(out / "datasets" / "counterfactuals")
    train = load_dataset_split(dataset, "all", "train")
    runs = {o.plan.variant.name: o.plan for o in result.outcomes}
    trained_on = {name: json.loads((Path(runs[name].train_dir) / TRAINING_DATA_FILE).read_text())
                  for name in ("sft", "sft-originals")}
    assert trained_on["sft"]["num_rows"] == len(train)
    assert trained_on["sft-originals"]["num_rows"] == sum(c == "original" for c in train["concept"]) < len(train)
    untuned = runs["untuned"]
    assert not Path(untuned.train_dir).exists()
    report = json.loads((Path(untuned.evaluation_dir) / "report.json").read_text())
    assert report["config"]["adapter"] is None and report["config"]["model"] == untuned.training["model_name_or_path"]
    table = (out / "experiment.md").read_text()
    assert "| untuned | 0 |" in table and "| sft-originals | 0 |" in table
    header = next(line for line in table.splitlines() if line.startswith("| variant |"))
    # the columns are what the trained variants change; the untuned run (no settings) changes none of them
    assert "`train_on`" in header and "`concept_loss_weight`" not in header and "`max_steps`" not in header
