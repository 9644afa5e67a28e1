"""The paper's main table: experiments/paper.yaml's structure, its --smoke run, and the pairing of its
differences (variant seed s against the same model's baseline seed s)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from procure_trl.experiments.config import ExperimentConfig, load_experiment
from procure_trl.experiments.paired import main_table
from procure_trl.experiments.results import ExperimentResult, RunOutcome

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = os.path.join(ROOT, "experiments", "paper.yaml")


def test_paper_config_has_the_papers_settings():
    config = load_experiment(PAPER)
    assert len(config.models) == 3 and config.baseline == "sft"
    assert [v.name for v in config.variants] == ["untuned", "sft", "procure"]
    assert config.datasets["counterfactuals"]["benchmarks"].split(",") == ["humaneval", "mbpp", "codecontests"]
    training = config.training
    assert training["num_train_epochs"] == 5 and training["optim"].startswith("adamw")
    assert training["per_device_train_batch_size"] * training["gradient_accumulation_steps"] == 16
    assert dict(config.variants[2].training)["concept_loss_weight"] == 0.1
    runs = config.runs()
    assert len(runs) == 3 * 3 * len(config.seeds)
    assert {run.training["model_name_or_path"] for run in runs} == set(config.models.values())
    assert len({run.run_dir for run in runs}) == len(runs)
    smoke = config.smoke_version()
    assert list(smoke.models) == config.smoke.models and len(smoke.models) == 2


def _report(path, model, tasks):
    """A report.json as procure evaluate writes it: per-task 0/1 results of the prompt and of each row."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "report.json"), "w", encoding="utf-8") as handle:
        json.dump({"config": {"benchmark": "dataset", "split": "test", "model": model, "adapter": None, "n": 4,
                              "k": [1]},
                   "tasks": [{"task_id": t, "original": {"passed": original},
                              "variants": [{"concept": "name_random", "reference": {"passed": ref},
                                            "counterfactual": {"passed": cf}}]}
                             for t, (original, ref, cf) in tasks.items()]}, handle)


def test_differences_pair_each_seed_with_the_same_models_baseline_seed(tmp_path):
    """Scripted results where every (model, variant, seed) run has its own pass rate: each per-seed difference
    must be that run's rate minus the same model's baseline rate of the same seed."""
    config = ExperimentConfig.from_dict({
        "output_dir": str(tmp_path), "datasets": {"d": str(tmp_path / "data")}, "seeds": [0, 1, 2],
        "models": {"m1": "org/one", "m2": "org/two"}, "baseline": "sft",
        "variants": [{"name": "procure"}, {"name": "sft"}],  # the baseline is named, not the first variant
    })
    task_ids = [f"HumanEval/{i}" for i in range(6)] + [f"MBPP/{i}" for i in range(6)]
    passes = {}
    outcomes = []
    for index, plan in enumerate(config.runs()):
        c = (index * 7 + plan.seed * 3) % 5  # passing completions of 4, distinct across runs
        passes[(plan.model, plan.variant.name, plan.seed)] = min(c, 4) / 4
        _report(plan.evaluation_dir, plan.model, {t: ([1] * min(c, 4) + [0] * (4 - min(c, 4)), [1, 0], [1, 1])
                                                  for t in task_ids})
        outcomes.append(RunOutcome(plan, "done", status={"evaluate": {"state": "done"}}))
    table = main_table(ExperimentResult(config, outcomes), n_bootstrap=50)
    assert [block["model"] for block in table["blocks"]] == ["m1", "m2"]
    for block in table["blocks"]:
        assert block["benchmarks"] == ["humaneval", "mbpp"]
        (difference,) = block["differences"]
        assert (difference["variant"], difference["baseline"], difference["seeds"]) == ("procure", "sft", [0, 1, 2])
        for benchmark in block["benchmarks"]:
            estimate = difference["metrics"][benchmark]["pass@1"]
            expected = [passes[(block["model"], "procure", s)] - passes[(block["model"], "sft", s)] for s in range(3)]
            assert estimate.per_seed == pytest.approx(expected)
            assert (estimate.tasks, estimate.seeds) == (6, 3)
            assert difference["metrics"][benchmark]["ccs"].rows == 6


@pytest.mark.slow  # builds a dataset from three benchmarks, trains 4 tiny models (about a minute here)
def test_paper_smoke_writes_one_block_per_model_and_a_column_group_per_benchmark(tmp_path, monkeypatch):
    from procure_trl.cli import main

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    monkeypatch.delenv("PROCURE_CODECONTESTS_FILE", raising=False)  # --smoke reads the sample shipped with the package
    with open(PAPER, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    data["output_dir"] = str(tmp_path / "paper")
    data["datasets"]["counterfactuals"]["output_dir"] = str(tmp_path / "data")
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    assert main(["experiment", "--config", str(path), "--smoke"]) == 0
    out = tmp_path / "paper-smoke"
    report = json.loads((out / "experiment.json").read_text())
    table = report["main_table"]
    assert [block["model"] for block in table["blocks"]] == ["llama-3.1-8b", "codellama-13b"]
    for block in table["blocks"]:
        assert block["benchmarks"] == ["humaneval", "mbpp", "codecontests"]
        assert [v["variant"] for v in block["variants"]] == ["untuned", "sft", "procure"]
        assert [(d["variant"], d["baseline"], d["seeds"]) for d in block["differences"]] == [
            ("untuned", "sft", [0]), ("procure", "sft", [0])]
    # the runs each block rests on are that model's: its own tiny model, its own folders
    runs = {(r["run_dir"].split(os.sep)[-3], r["variant"]) for r in report["runs"]}
    assert runs == {(m, v) for m in ("llama-3.1-8b", "codellama-13b") for v in ("untuned", "sft", "procure")}
    text = (out / "experiment.md").read_text()
    assert "### llama-3.1-8b (`meta-llama/Llama-3.1-8B`)" in text and "### codellama-13b" in text
    assert "HumanEval pass@1 | HumanEval CCS | HumanEval ccs_gap | MBPP pass@1" in text
    assert "CodeContests CCS | CodeContests ccs_gap |" in text
    assert table["metrics"] == ["pass@1", "ccs", "ccs_gap"]
    assert "| procure − sft | 1 pairs |" in text and "task-clustered bootstrap" in text


@pytest.mark.slow  # builds a small dataset (about 10 s here)
def test_plan_prints_rows_per_concept_and_benchmark_and_detectable_differences(tmp_path, capsys):
    from procure_trl.cli import main
    from procure_trl.dataset.rows import load_dataset_split

    data = {"output_dir": str(tmp_path / "exp"), "seeds": [0, 1],
            "datasets": {"he": {"benchmarks": "humaneval", "limit": 8, "test_size": 0.5,
                                "output_dir": str(tmp_path / "data")}},
            "training": {"model_name_or_path": "not/used"}, "evaluation": {"n": 4},
            "variants": [{"name": "sft"}, {"name": "procure"}]}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["experiment", "--plan", str(path)]) == 0
    text = capsys.readouterr().out
    test_tasks = {row["task_id"] for row in load_dataset_split(str(tmp_path / "data"), "all", "test")}
    assert f"| humaneval | {len(test_tasks)} |" in text
    assert "(2 seeds per variant, n = 4 completions per prompt" in text
    import re

    assert re.search(r"- pass@1: \d+\.\d{3} \(standard error", text) and re.search(r"- ccs: \d+\.\d{3} ", text)
    assert not (tmp_path / "exp" / "runs").exists()  # nothing trained
    assert main(["experiment", "--plan", str(path), "--config", str(path)]) != 0
    assert "one of them" in capsys.readouterr().err


def test_smoke_reads_the_shipped_samples_unless_copies_are_named(monkeypatch, tmp_path):
    from procure_trl.experiments.runner import _shipped_samples_unless_given
    from procure_trl.problems import SAMPLES_DIR, load_problems

    monkeypatch.delenv("PROCURE_CODECONTESTS_FILE", raising=False)
    monkeypatch.setenv("PROCURE_MBPP_DIR", str(tmp_path))  # the user's own copy wins
    with _shipped_samples_unless_given(smoke=True):
        assert os.environ["PROCURE_CODECONTESTS_FILE"] == str(SAMPLES_DIR / "codecontests.jsonl")
        assert os.environ["PROCURE_MBPP_DIR"] == str(tmp_path)
        assert load_problems("codecontests")  # offline: the shipped sample
    assert "PROCURE_CODECONTESTS_FILE" not in os.environ  # nothing left behind
    with _shipped_samples_unless_given(smoke=False):
        assert "PROCURE_CODECONTESTS_FILE" not in os.environ  # a real run reads the real data
