"""Held-out evaluation and the guards around it, on a tiny chain: build with a split -> train on `train` ->
evaluate `--split test`; the same adapter asked to score `train` is refused, as are an adapter on another base
model and token ids made by another tokenizer."""

from __future__ import annotations

import json

import pytest
import yaml

from procure_trl.cli import main
from procure_trl.dataset.rows import load_dataset_split
from procure_trl.provenance import TRAINING_DATA_FILE, tokenizer_fingerprint
from procure_trl.testing_utils import build_tiny_llama, build_tiny_tokenizer

# One tiny chain (build, train, then evaluate) is shared by the module: about a minute on a laptop CPU.
pytestmark = pytest.mark.slow

EVALUATE = ["--n", "1", "--k", "1", "--temperature", "0", "--max-new-tokens", "4", "--backend", "transformers",
            "--timeout", "2", "--num-workers", "2", "--n-bootstrap", "10"]


def _save_model(path, tokenizer):
    build_tiny_llama(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def _one_error_line(capsys) -> str:
    """The error, checked to be one line without a traceback (progress bars may precede it on stderr)."""
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and err.endswith(errors[0]) and "Traceback" not in err, err
    return errors[0]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The tiny chain's files: a base model, a pre-tokenized dataset with a split, an adapter trained on `train`."""
    root = tmp_path_factory.mktemp("chain")
    base = _save_model(root / "base", build_tiny_tokenizer("bpe"))
    dataset = str(root / "procure-cf")
    assert main(["build", "--benchmarks", "humaneval", "--limit", "8", "--test-size", "0.25", "--tokenizer", base,
                 "--output-dir", dataset]) == 0
    recipe = {
        "dataset_name": dataset, "dataset_config": "all", "model_name_or_path": base, "use_peft": True,
        "lora_r": 4, "lora_alpha": 8, "dtype": "float32", "output_dir": str(root / "adapter"), "max_steps": 1,
        "per_device_train_batch_size": 2, "max_length": 256, "use_cpu": True, "report_to": "none",
        "save_strategy": "no", "disable_tqdm": True,
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", "--config", str(root / "recipe.yaml")]) == 0
    return {"root": root, "base": base, "dataset": dataset, "adapter": str(root / "adapter")}


@pytest.fixture
def allow_exec(monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")


def _task_ids(dataset: str, split: str) -> set[str]:
    return set(load_dataset_split(dataset, "all", split)["task_id"])


def test_training_writes_what_it_trained_on(chain):
    record = json.loads((chain["root"] / "adapter" / TRAINING_DATA_FILE).read_text())
    # what it trained on and in which prompt format; no argument, token or key
    assert set(record) == {"dataset", "config", "split", "fingerprint", "num_rows", "task_ids", "prompt_format"}
    assert record["prompt_format"] == "completion"  # the tiny tokenizer has no chat template
    assert (record["dataset"], record["config"], record["split"]) == (chain["dataset"], "all", "train")
    assert set(record["task_ids"]) == _task_ids(chain["dataset"], "train")
    assert record["fingerprint"]


def test_adapter_scores_only_held_out_tasks(chain, allow_exec, tmp_path):
    train, test = _task_ids(chain["dataset"], "train"), _task_ids(chain["dataset"], "test")
    assert train and test and not train & test
    out = tmp_path / "eval-test"
    assert main(["evaluate", "--model", chain["base"], "--adapter", chain["adapter"], "--dataset", chain["dataset"],
                 "--split", "test", "--output-dir", str(out), *EVALUATE]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {t["task_id"] for t in report["tasks"]} == test
    rows = load_dataset_split(chain["dataset"], "all", "test")
    given = sum(c != "original" for c in rows["concept"])
    assert sum(c["rows_given"] for c in report["per_concept"]) == given > 0
    assert report["config"]["benchmark"] == "humaneval"  # the tests came from the benchmark of the task ids


def test_adapter_on_its_training_tasks_is_refused(chain, allow_exec, tmp_path, capsys):
    out = tmp_path / "eval-train"
    capsys.readouterr()
    rc = main(["evaluate", "--model", chain["base"], "--adapter", chain["adapter"], "--dataset", chain["dataset"],
               "--split", "train", "--output-dir", str(out), *EVALUATE])
    err = _one_error_line(capsys)
    assert rc == 2 and not (out / "report.json").exists()
    n_train = len(_task_ids(chain["dataset"], "train"))
    assert f"was trained on {n_train} of the tasks to score (HumanEval/" in err
    assert "--allow-train-overlap" in err


def test_adapter_on_another_base_model_is_refused(chain, allow_exec, tmp_path, capsys):
    other = _save_model(tmp_path / "other-base", build_tiny_tokenizer("bpe"))
    capsys.readouterr()
    rc = main(["evaluate", "--model", other, "--adapter", chain["adapter"], "--dataset", chain["dataset"],
               "--output-dir", str(tmp_path / "o"), *EVALUATE])
    err = _one_error_line(capsys)
    assert rc == 2
    assert f"was trained on base model {chain['base']}" in err and f"--model is {other}" in err
    assert "--allow-base-mismatch" in err


def test_pre_tokenized_dataset_names_its_tokenizer_and_another_is_refused(chain, tmp_path, capsys):
    rows = load_dataset_split(chain["dataset"], "all", "train")
    base_tokenizer = build_tiny_tokenizer("bpe")
    assert set(rows["tokenizer_fingerprint"]) == {tokenizer_fingerprint(base_tokenizer)}
    assert set(rows["tokenizer_name"]) == {chain["base"]}

    other_tokenizer = build_tiny_tokenizer("bpe", vocab_size=400)
    assert tokenizer_fingerprint(other_tokenizer) != tokenizer_fingerprint(base_tokenizer)
    other = _save_model(tmp_path / "other", other_tokenizer)
    recipe = yaml.safe_load((chain["root"] / "recipe.yaml").read_text())
    recipe.update(model_name_or_path=other, output_dir=str(tmp_path / "out"))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "recipe.yaml")]) == 2
    err = _one_error_line(capsys)
    assert f"tokenized with '{chain['base']}'" in err and f"trainer's tokenizer is '{other}'" in err
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
