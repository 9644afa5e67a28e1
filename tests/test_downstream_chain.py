"""The downstream chain on a CPU, command by command: perturb -> mutate -> build (with the mutants config) -> train
a tiny model -> evaluate ``--task repair`` and ``--task detect`` on ``--split test`` (base model and adapter) ->
compare. Also the first run of ``TransformersBackend.score`` on a real (tiny) model: its answer likelihoods are
checked against a forward pass computed here."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from procure_trl.cli import main
from procure_trl.dataset.rows import load_dataset_split
from procure_trl.testing_utils import build_tiny_llama, build_tiny_tokenizer

pytestmark = pytest.mark.slow  # perturbs and mutates 10 problems, trains a tiny model one step, evaluates four runs

EVALUATE = ["--n", "1", "--k", "1", "--temperature", "0", "--max-new-tokens", "8", "--backend", "transformers",
            "--timeout", "2", "--num-workers", "2", "--n-bootstrap", "20", "--dtype", "float32", "--device", "cpu"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("downstream")
    tokenizer = build_tiny_tokenizer("bpe")
    base = root / "base"
    build_tiny_llama(tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    cf, mutants, dataset = root / "cf.jsonl", root / "mutants.jsonl", root / "dataset"
    assert main(["perturb", "--benchmark", "humaneval", "--limit", "10", "--output", str(cf), "--no-progress",
                 "--num-workers", "2"]) == 0
    assert main(["mutate", "--counterfactuals", str(cf), "--output", str(mutants), "--num-workers", "2",
                 "--no-progress"]) == 0
    assert main(["build", "--input-jsonl", str(cf), "--benchmarks", "humaneval", "--test-size", "0.5",
                 "--mutants", str(mutants), "--output-dir", str(dataset)]) == 0
    recipe = {"dataset_name": str(dataset), "dataset_config": "all", "model_name_or_path": str(base),
              "use_peft": True, "lora_r": 4, "lora_alpha": 8, "dtype": "float32", "output_dir": str(root / "adapter"),
              "max_steps": 1, "per_device_train_batch_size": 2, "max_length": 256, "use_cpu": True,
              "report_to": "none", "save_strategy": "no", "disable_tqdm": True}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(root / "recipe.yaml")]) == 0
    return {"root": root, "base": str(base), "dataset": str(dataset), "adapter": str(root / "adapter")}


def _evaluate(chain, task: str, name: str, *extra: str) -> dict:
    out = chain["root"] / name
    assert main(["evaluate", "--model", chain["base"], "--task", task, "--dataset", chain["dataset"], "--split",
                 "test", "--output-dir", str(out), *extra, *EVALUATE]) == 0
    return json.loads((out / "report.json").read_text())


def test_repair_and_detect_of_base_and_adapter_on_held_out_pairs_then_compare(chain, monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    test_pairs = load_dataset_split(chain["dataset"], "mutants", "test")
    train_tasks = set(load_dataset_split(chain["dataset"], "all", "train")["task_id"])
    assert len(test_pairs) > 0 and not train_tasks & set(test_pairs["task_id"])
    for task in ("repair", "detect"):
        base = _evaluate(chain, task, f"{task}-base")
        tuned = _evaluate(chain, task, f"{task}-adapter", "--adapter", chain["adapter"])
        for report in (base, tuned):
            assert report["task"] == task and report["metrics"]["pairs"] == len(test_pairs)
            assert {p["task_id"] for p in report["pairs"]} == set(test_pairs["task_id"])
            assert report["config"]["prompt_format"] == "completion"  # the dataset's, read from its card
        out = chain["root"] / f"compare-{task}"
        assert main(["compare", str(chain["root"] / f"{task}-base"), str(chain["root"] / f"{task}-adapter"),
                     "--output-dir", str(out), "--n-bootstrap", "20"]) == 0
        comparison = json.loads((out / "comparison.json").read_text())
        assert comparison["task"] == task and comparison["differences"][0]["pairs"] == len(test_pairs)
        score = "repair_pass@1" if task == "repair" else "accuracy"
        assert comparison["runs"][1]["scores"][score]["value"] == pytest.approx(tuned["metrics"][score])
    # the adapter scored on the tasks it trained on is refused, as for generate
    assert main(["evaluate", "--model", chain["base"], "--adapter", chain["adapter"], "--task", "detect",
                 "--dataset", chain["dataset"], "--split", "train", "--output-dir", str(chain["root"] / "refused"),
                 *EVALUATE]) == 2


def test_transformers_backend_scores_answers_by_their_log_likelihood(chain):
    import torch

    from procure_trl.dataset.prompt_format import model_input_ids
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.downstream import detect_answers, detect_prompt
    from procure_trl.evaluation.sampling import build_backend

    backend = build_backend(EvaluationConfig(model=chain["base"], backend="transformers", dtype="float32",
                                             device="cpu", output_dir=str(chain["root"] / "unused")))
    prompt = detect_prompt("completion", "Add one.", "def f(x):\n    return x + 1\n")
    answers = detect_answers("completion")
    scores = backend.score([prompt, prompt], list(answers))
    model, tokenizer = backend.model, backend.tokenizer
    for answer, score in zip(answers, scores):
        prefix = model_input_ids(tokenizer, prompt)
        full = model_input_ids(tokenizer, prompt + answer)
        assert full[:len(prefix)] == prefix and len(full) > len(prefix)
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([full])).logits.float().log_softmax(-1)[0]
        expected = sum(float(logits[t - 1, full[t]]) for t in range(len(prefix), len(full)))
        assert math.isfinite(score) and score < 0 and score == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert scores[0] != scores[1]  # the two answers are told apart


def test_an_experiment_evaluates_its_runs_on_the_downstream_tasks_too(chain, monkeypatch):
    from procure_trl.experiments import ExperimentConfig
    from procure_trl.experiments.runner import run_experiment

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    out = chain["root"] / "experiment"
    config = ExperimentConfig.from_dict({
        "name": "downstream", "output_dir": str(out), "datasets": {"d": chain["dataset"]},
        "tasks": ["generate", "repair", "detect"],
        "training": {"model_name_or_path": chain["base"], "use_peft": True, "lora_r": 4, "lora_alpha": 8,
                     "dtype": "float32", "max_steps": 1, "per_device_train_batch_size": 2, "max_length": 256,
                     "use_cpu": True, "report_to": "none", "save_strategy": "no", "disable_tqdm": True},
        "evaluation": {"n": 1, "k": [1], "temperature": 0.0, "max_new_tokens": 8, "backend": "transformers",
                       "dtype": "float32", "device": "cpu", "n_bootstrap": 20, "num_workers": 2, "limit": 2},
        "variants": [{"name": "procure"}],
    })
    result = run_experiment(config)
    assert not result.failed
    status = result.outcomes[0].status
    for task in ("repair", "detect"):
        report = json.loads((out / "runs" / "procure" / "seed-0" / f"evaluation-{task}" / "report.json").read_text())
        assert report["task"] == task and status[f"evaluate_{task}"]["metrics"] == report["metrics"]
    table = (out / "experiment.md").read_text()
    assert "## `--task repair`" in table and "## `--task detect`" in table
    again = run_experiment(config)  # finished with the same settings: nothing is evaluated again
    assert [o.state for o in again.outcomes] == ["skipped"]
