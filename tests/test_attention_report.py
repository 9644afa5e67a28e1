"""procure attention-report: per-layer attention mass through the trainer's probe, checked against eager attention."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from procure_trl.attention_report.control import control_pairs, matched_queries, perturbed_runs, positions_mask
from procure_trl.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "engine_counterfactuals.jsonl"


# ---- the control, by hand ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("perturbed", "first", "expected"),
    [
        ([5, 6, 7], 0, [(5, 4), (6, 3), (7, 2)]),  # one run of n tokens: the n tokens just before it
        ([5, 7], 0, [(5, 4), (7, 6)]),  # two runs of one token: the token before each
        ([4, 5, 9, 10], 0, [(4, 3), (5, 2), (9, 8), (10, 7)]),
        ([3, 4, 6, 7], 0, [(3, 2), (4, 1), (6, 5), (7, 0)]),  # the second run passes the first run and its control
        ([2, 3, 4], 0, None),  # no room before the run
        ([6, 7], 5, None),  # the room before the run is padding
        ([6, 7], 4, [(6, 5), (7, 4)]),
        ([0], 0, None),
        ([], 0, None),
    ],
)
def test_control_pairs(perturbed, first, expected):
    assert control_pairs(perturbed, first) == expected


def test_matched_queries_drop_the_windows_that_see_only_the_control():
    queries = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    # pairs (4, 3) and (7, 5): queries 3 and 5, 6 see a control token before its perturbed counterpart
    assert matched_queries(queries, [(4, 3), (7, 5)]) == [0, 0, 0, 0, 1, 0, 0, 1, 1, 1]


def test_runs_and_masks():
    assert perturbed_runs([7, 3, 4, 9, 8]) == [(3, 2), (7, 3)]
    assert positions_mask([1, 3], 5) == [0, 1, 0, 1, 0]


# ---- the command against an eager computation ------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A dataset made by the dataset builder, a tiny 2-layer Llama and a LoRA adapter that changes attention."""
    from peft import LoraConfig, get_peft_model

    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset
    from procure_trl.testing_utils import build_tiny_llama, build_tiny_tokenizer

    root = tmp_path_factory.mktemp("attention-report")
    engine_rows = root / "humaneval.jsonl"  # the HumanEval lines of the engine fixture: no MBPP to load
    engine_rows.write_text("".join(line for line in FIXTURE.read_text().splitlines(keepends=True)
                                   if '"HumanEval/' in line))
    build_counterfactual_dataset(BuildConfig(input_jsonl=str(engine_rows), benchmarks="humaneval",
                                             output_dir=str(root / "data"), test_size=0.5, seed=0))
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_llama(tokenizer, num_hidden_layers=2)
    with torch.no_grad():  # sharper queries and keys: a freshly initialised model attends almost evenly, which would
        # leave perturbed and control equal and the comparison unable to tell them apart
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(6.0)
            layer.self_attn.k_proj.weight.mul_(6.0)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    torch.manual_seed(3)
    lora = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "k_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(root / "adapter")
    return root


def _eager_reference(model, ids: list[int], delta: list[int], completion: list[int]) -> dict[str, list[float]]:
    """Per layer, from the attention probabilities that eager attention materialises (one unpadded row): the mean
    over the attention term's queries of the head-averaged attention on the perturbed tokens, and over the matched
    queries the same on the perturbed tokens and on the control."""
    with torch.no_grad():
        attentions = model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
    perturbed = [k for k, d in enumerate(delta) if d]
    first = min(k for k in perturbed if completion[k])
    queries = [q for q in range(first, len(ids)) if completion[q]]
    pairs = control_pairs(perturbed)  # which tokens and queries the control uses is tested by hand above
    matched = [q for q in queries if not any(c <= q < p for p, c in pairs)]
    control = [c for _, c in pairs]
    out: dict[str, list[float]] = {"perturbed": [], "perturbed_matched": [], "control": []}
    for probs in attentions:
        probs = probs[0].mean(dim=0)  # (L, L), heads averaged like m_q
        for name, keys, chosen in (("perturbed", perturbed, queries), ("perturbed_matched", perturbed, matched),
                                   ("control", control, matched)):
            out[name].append(sum(float(probs[q, keys].sum()) for q in chosen) / max(len(chosen), 1))
    return out, bool(matched)


def test_report_equals_eager_attention_for_base_and_adapter(workspace, capsys):
    from datasets import load_dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from procure_trl.dataset.masks import prompt_completion_mask

    out_dir = workspace / "report"
    code = main(["attention-report", "--model", str(workspace / "model"), "--adapter", str(workspace / "adapter"),
                 "--dataset", str(workspace / "data"), "--split", "test", "--output-dir", str(out_dir),
                 "--batch-size", "3", "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| layer | base m_q | base matched: perturbed | base matched: control | adapter m_q |" in printed
    report = json.loads((out_dir / "attention_report.json").read_text())
    assert (out_dir / "attention_by_layer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = load_dataset(str(workspace / "data"), "all", split="test").to_list()
    counterfactuals = [i for i, r in enumerate(rows) if r["changed_spans"]]
    assert [r["row"] for r in report["per_row"]] == counterfactuals and 2 <= len(counterfactuals) <= 3
    assert report["rows"] == {"in_split": len(rows), "originals": len(rows) - len(counterfactuals),
                              "counterfactual": len(counterfactuals), "measured": len(counterfactuals),
                              "matched": len(counterfactuals), "skipped": {}}

    tokenizer = AutoTokenizer.from_pretrained(workspace / "model")
    eager = {"base": AutoModelForCausalLM.from_pretrained(workspace / "model", attn_implementation="eager"),
             "adapter": PeftModel.from_pretrained(
                 AutoModelForCausalLM.from_pretrained(workspace / "model", attn_implementation="eager"),
                 workspace / "adapter")}
    lengths = set()
    for entry in report["per_row"]:
        row = rows[entry["row"]]
        tokens = prompt_completion_mask(row["prompt"], row["completion"], row["changed_spans"], tokenizer)
        lengths.add(len(tokens["input_ids"]))
        for name, model in eager.items():
            expected, has_matched = _eager_reference(model.eval(), tokens["input_ids"], tokens["perturbation_mask"],
                                                     tokens["completion_mask"])
            assert has_matched  # every row of this split has matched queries, so all three numbers are compared
            for key in ("perturbed", "perturbed_matched", "control"):
                torch.testing.assert_close(torch.tensor(entry[name][key]), torch.tensor(expected[key]),
                                           rtol=0, atol=1e-5, msg=f"row {entry['row']} {name} {key}")
    assert len(lengths) == len(counterfactuals)  # rows of different lengths in one batch of 3: left padding
    assert all(0 < e["matched_queries"] < e["queries"] for e in report["per_row"])  # the two query sets differ

    # the summary is the mean over rows; the numbers distinguish what they should
    for name in ("base", "adapter"):
        layers = report["results"][name]["layers"]
        for key in ("perturbed", "perturbed_matched", "control"):
            per_row = torch.tensor([e[name][key] for e in report["per_row"]])
            torch.testing.assert_close(torch.tensor([layer[key]["mean"] for layer in layers]), per_row.mean(dim=0),
                                       rtol=0, atol=1e-6)
        difference = torch.tensor([e[name]["perturbed_matched"] for e in report["per_row"]]) - torch.tensor(
            [e[name]["control"] for e in report["per_row"]])
        assert difference.abs().max() > 1e-3  # far beyond the tolerance above: a mix-up of the two would show
    base = torch.tensor([e["base"]["perturbed"] for e in report["per_row"]])
    adapter = torch.tensor([e["adapter"]["perturbed"] for e in report["per_row"]])
    assert (base - adapter).abs().max() > 1e-3  # the adapter really was applied


def test_one_forward_pass_per_batch(workspace):
    """The perturbed tokens and the control are measured in the same forward pass."""
    from datasets import load_dataset

    from procure_trl.attention_report.config import AttentionReportConfig
    from procure_trl.attention_report.examples import prepare_examples
    from procure_trl.attention_report.report import load_model, measure_examples

    model, tokenizer = load_model(AttentionReportConfig(model=str(workspace / "model"), dataset=str(workspace / "data"),
                                                        device="cpu"))
    rows = load_dataset(str(workspace / "data"), "all", split="test")
    examples = prepare_examples(rows, rows.column_names, tokenizer).examples
    calls = []
    forward = model.forward
    model.forward = lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs)
    values = measure_examples(model, examples, [0, 1], pad_token_id=tokenizer.pad_token_id, batch_size=1)
    assert len(calls) == len(examples) >= 2
    assert set(values) == {"perturbed", "perturbed_matched", "control"}


def _error_lines(capsys) -> list[str]:
    """The command's error lines on stderr (progress bars of the dataset loader may come before them)."""
    return [line for line in capsys.readouterr().err.splitlines() if "error:" in line]


def test_bad_inputs_are_one_line_errors(workspace, tmp_path, capsys):
    common = ["--output-dir", str(tmp_path / "out"), "--device", "cpu"]
    assert main(["attention-report", "--model", str(workspace / "model"), "--dataset", str(tmp_path / "missing"),
                 *common]) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "missing" in err[0] and "does not exist" in err[0]

    assert main(["attention-report", "--model", str(tmp_path / "no-model"), "--dataset", str(workspace / "data"),
                 *common]) == 2
    err = _error_lines(capsys)
    assert err == [f"procure attention-report: error: --model: no such folder: {tmp_path / 'no-model'}"]

    assert main(["attention-report", "--model", str(workspace / "model"), "--dataset", str(workspace / "data"),
                 "--split", "validation", *common]) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "'validation'" in err[0]

    (tmp_path / "not-an-adapter").mkdir()
    assert main(["attention-report", "--model", str(workspace / "model"), "--dataset", str(workspace / "data"),
                 "--adapter", str(tmp_path / "not-an-adapter"), *common]) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "not-an-adapter" in err[0]


def _adapter_copy(workspace, tmp_path, name: str, **files) -> str:
    """A copy of the workspace adapter with some of its JSON files replaced."""
    import shutil

    folder = tmp_path / name
    shutil.copytree(workspace / "adapter", folder)
    for filename, update in files.items():
        path = folder / f"{filename}.json"
        content = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps(content | update))
    return str(folder)


def test_an_adapter_of_another_base_or_trained_on_the_split_is_refused(workspace, tmp_path, capsys):
    from datasets import load_dataset

    common = ["--model", str(workspace / "model"), "--dataset", str(workspace / "data"), "--output-dir",
              str(tmp_path / "out"), "--device", "cpu"]
    other_base = _adapter_copy(
        workspace, tmp_path, "other-base", adapter_config={"base_model_name_or_path": "org/other"}
    )
    assert main(["attention-report", *common, "--adapter", other_base]) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "org/other" in err[0] and "--allow-base-mismatch" in err[0]

    test_tasks = sorted(set(load_dataset(str(workspace / "data"), "all", split="test")["task_id"]))
    trained = _adapter_copy(workspace, tmp_path, "trained-on-test", procure_training_data={
        "dataset": str(workspace / "data"), "config": "all", "split": "train", "task_ids": test_tasks[:1]})
    assert main(["attention-report", *common, "--adapter", trained]) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and test_tasks[0] in err[0] and "--allow-train-overlap" in err[0]
    assert main(["attention-report", *common, "--adapter", trained, "--allow-train-overlap"]) == 0


def test_pre_tokenized_rows_give_the_same_numbers_and_other_tokenizers_are_refused(workspace, tmp_path, capsys):
    from procure_trl.attention_report import AttentionReportConfig, run_attention_report
    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset
    from procure_trl.testing_utils import build_tiny_tokenizer

    engine_rows = str(workspace / "humaneval.jsonl")
    build_counterfactual_dataset(BuildConfig(input_jsonl=engine_rows, benchmarks="humaneval", test_size=0.5, seed=0,
                                             output_dir=str(tmp_path / "tokenized"),
                                             tokenizer=str(workspace / "model")))
    tokenized, spans = (
        run_attention_report(AttentionReportConfig(model=str(workspace / "model"), dataset=str(dataset),
                                                   output_dir=str(tmp_path / f"out-{dataset.name}"), device="cpu"))
        for dataset in (tmp_path / "tokenized", workspace / "data")
    )
    assert tokenized["per_row"] == spans["per_row"] and len(spans["per_row"]) >= 2

    build_tiny_tokenizer("wordpiece").save_pretrained(tmp_path / "wordpiece")
    build_counterfactual_dataset(BuildConfig(input_jsonl=engine_rows, benchmarks="humaneval", test_size=0.5, seed=0,
                                             output_dir=str(tmp_path / "other"), tokenizer=str(tmp_path / "wordpiece")))
    assert main(["attention-report", "--model", str(workspace / "model"), "--dataset", str(tmp_path / "other"),
                 "--output-dir", str(tmp_path / "out-other"), "--device", "cpu"]) == 2
    err = _error_lines(capsys)
    assert len(err) == 1 and "wordpiece" in err[0] and "tokenized with" in err[0]
