"""The generalization experiment scores every task of the unseen benchmark: its cross-benchmark datasets hold one
benchmark whole in ``train`` and the other whole in ``test``, and its smoke run evaluates every test task the smoke
datasets hold (no evaluation limit)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from procure_trl.dataset.rows import load_dataset_split, task_source
from procure_trl.experiments import load_experiment
from procure_trl.experiments.config import SMOKE_BUILD
from procure_trl.experiments.runner import prepare_datasets

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.slow  # runs the engine on the smoke datasets' 2 x 10 problems and scores 10 tasks (about 15 s here)
def test_the_smoke_run_scores_every_task_of_the_unseen_benchmark(tmp_path, monkeypatch):
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.run import evaluate_model
    from procure_trl.evaluation.sampling import ScriptedBackend

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    config = load_experiment(str(EXPERIMENTS / "generalization.yaml"))
    config = dataclasses.replace(config, output_dir=str(tmp_path / "generalization")).smoke_version()
    config = dataclasses.replace(config, datasets={"humaneval-to-mbpp": config.datasets["humaneval-to-mbpp"]},
                                 variants=[v for v in config.variants if v.eval_dataset == "humaneval-to-mbpp"],
                                 train_dataset="humaneval-to-mbpp", eval_dataset=None)
    path = prepare_datasets(config)["humaneval-to-mbpp"]

    def tasks(split: str) -> Counter:
        return Counter(task_source(t) for t in set(load_dataset_split(path, "all", split)["task_id"]))

    limit = SMOKE_BUILD["limit"]
    assert tasks("test") == {"mbpp": limit}  # every MBPP problem the smoke build takes is a test task
    assert set(tasks("train")) == {"humaneval"} and tasks("train")["humaneval"] <= limit
    plan = next(p for p in config.runs() if p.variant.name == "humaneval-to-mbpp-procure")
    kwargs = {**plan.evaluation_kwargs(path, config.eval_split), "model": "scripted", "adapter": None}
    report = evaluate_model(EvaluationConfig(**kwargs), backend=ScriptedBackend(lambda prompt, index: ""))
    assert len(report.tasks) == limit
