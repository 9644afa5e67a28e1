"""The evaluation harness end to end: scripted completions for the scores, a tiny model for the plumbing."""

from __future__ import annotations

import json

import pytest
from harness_rows import COMPLETIONS, DOUBLE, FLIPPED, PROBLEMS, RENAMED, SIGN, SIGN_PROMPT, counterfactual_line

from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.run import evaluate_model
from procure_trl.evaluation.sampling import ScriptedBackend


@pytest.fixture
def counterfactual_file(tmp_path):
    path = tmp_path / "counterfactuals.jsonl"
    lines = [
        counterfactual_line(SIGN, "if_else_flip", FLIPPED),
        counterfactual_line(SIGN, "name_random", RENAMED),
        counterfactual_line(
            DOUBLE, "if_else_flip", "def double(x):\n    return x * 2\n"
        ),  # no if: skipped with a reason
        {**counterfactual_line(
            DOUBLE, "name_shuffle", "def double(x):\n    return 2 * x\n"
        ), "status": "not_applicable",
         "code": None, "changed_spans": None},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def allow_exec(monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")


def _config(tmp_path, counterfactual_file, **kwargs):
    base = dict(
        model="scripted", benchmark="toy", output_dir=str(tmp_path / "out"), counterfactuals=str(counterfactual_file),
        n=2, k=(1, 2), timeout=1.0, num_workers=2, n_bootstrap=200,
    )
    base.update(kwargs)
    return EvaluationConfig(**base)


def test_scores_match_hand_computed_values(tmp_path, counterfactual_file, allow_exec):
    config = _config(tmp_path, counterfactual_file)
    report = evaluate_model(config, problems=PROBLEMS, backend=ScriptedBackend(COMPLETIONS))
    # originals: sign 1/2 passes, double 1/2 (one timeout) -> pass@1 = 0.5, pass@2 = 1
    assert report.pass_at_k["original"] == {"pass@1": pytest.approx(0.5), "pass@2": pytest.approx(1.0)}
    double = next(t for t in report.tasks if t["task_id"] == "toy/double")
    assert double["original"]["prompt"] == "def double(x):\n" and double["original"]["passed"] == [0, 1]
    assert [(c["completion"], c["status"], c["error_type"]) for c in double["original"]["completions"]] == [
        ("    while True:\n        pass\n", "timed_out", "Timeout"),
        ("    return x + x\n", "passed", None),
    ]
    assert report.timeouts == {"original": 1, "reference": {"if_else_flip": 0, "name_random": 0},
                               "counterfactual": {"if_else_flip": 0, "name_random": 0}}
    # if_else_flip row: refs [1,1], preds [0,1] -> 2 consistent / 4 valid; name_random: refs [1,1], preds [1,0] -> 2/4
    assert report.ccs["ccs"] == pytest.approx(0.5)
    assert report.ccs["ccs_per_concept"] == {"if_else_flip": pytest.approx(0.5), "name_random": pytest.approx(0.5)}
    assert report.ccs["ame"] == pytest.approx(0.5)
    assert report.pass_at_k["reference"]["if_else_flip"]["pass@1"] == pytest.approx(1.0)
    assert report.pass_at_k["counterfactual"]["if_else_flip"]["pass@1"] == pytest.approx(0.5)
    assert [(s["task_id"], s["reason"]) for s in report.skipped] == [("toy/double", "no_conditional")]
    assert "no if statement" in report.skipped[0]["message"]
    assert double["skipped"] == [
        {"concept": "if_else_flip", "reason": "no_conditional", "message": report.skipped[0]["message"]}
    ]
    by_concept = {row["concept"]: row for row in report.per_concept}
    assert by_concept["if_else_flip"]["skipped_by_reason"] == {"no_conditional": 1}
    assert (by_concept["if_else_flip"]["rows_given"], by_concept["if_else_flip"]["rows"]) == (2, 1)

    # Per task and concept: both prompts, each completion and its verdict, readable without the cache.
    sign = next(t for t in report.tasks if t["task_id"] == "toy/sign")
    renamed = next(v for v in sign["variants"] if v["concept"] == "name_random")
    assert renamed["counterfactual"]["prompt"] == SIGN_PROMPT + "    if x > 0:\n        v = 1\n    else:\n"
    assert renamed["reference"]["prompt"] == SIGN_PROMPT + "    if x > 0:\n        y = 1\n    else:\n"
    assert [(c["status"], c["error_type"]) for c in renamed["counterfactual"]["completions"]] == [
        ("passed", None), ("exception", "UnboundLocalError")  # y is assigned later in the function
    ]
    assert renamed["counterfactual"]["completions"][1]["completion"] == "        y = -1\n    return y\n"
    flip = next(v for v in sign["variants"] if v["concept"] == "if_else_flip")
    assert [c["status"] for c in flip["counterfactual"]["completions"]] == ["assertion_failed", "passed"]

    out = tmp_path / "out"
    saved = json.loads((out / "report.json").read_text())
    assert saved["ccs"]["ccs"] == pytest.approx(0.5)
    assert saved["definitions"]["ccs.references"].startswith("per row: pass/fail of the reference")
    for name in ("ccs_per_concept.png", "pass_at_k.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "| if_else_flip | 2 | 1 | 1 | 0.500 |" in summary
    assert "| if_else_flip | no_conditional: the counterfactual has no if statement" in summary
    assert "1 completion(s) timed out" in summary


@pytest.mark.slow
def test_rerun_uses_the_cache_and_an_interrupted_run_resumes(tmp_path, counterfactual_file, allow_exec):
    config = _config(tmp_path, counterfactual_file, batch_size=3, n_bootstrap=0)

    class Crashing(ScriptedBackend):
        def generate(self, requests):
            if self.calls:
                raise KeyboardInterrupt  # the user stops the run after the first batch
            return super().generate(requests)

    with pytest.raises(KeyboardInterrupt):
        evaluate_model(config, problems=PROBLEMS, backend=Crashing(COMPLETIONS))
    resumed = ScriptedBackend(COMPLETIONS)
    first = evaluate_model(config, problems=PROBLEMS, backend=resumed)
    asked = [r for call in resumed.calls for r in call]
    assert len(asked) == 6 * 2 - 3  # 6 prompts x 2 samples, 3 already cached by the interrupted run
    again = ScriptedBackend(COMPLETIONS)
    second = evaluate_model(config, problems=PROBLEMS, backend=again)
    assert again.calls == []
    assert second.ccs == first.ccs and second.tasks == first.tasks
    # Everything cached: re-scoring builds no backend, so the model (here a name that loads nothing) is never loaded.
    third = evaluate_model(config, problems=PROBLEMS, backend=None)
    assert third.tasks == first.tasks


def test_counterfactuals_of_another_benchmark_are_refused(tmp_path, allow_exec):
    path = tmp_path / "mbpp.jsonl"
    line = counterfactual_line(SIGN, "name_random", RENAMED)
    line["task_id"] = "Mbpp/2"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(ValueError, match=r"1 task id\(s\) are not in toy \(Mbpp/2\).*--benchmark"):
        evaluate_model(_config(tmp_path, path), problems=PROBLEMS, backend=ScriptedBackend(COMPLETIONS))


def test_counterfactuals_of_another_benchmark_version_are_refused(tmp_path, allow_exec):
    path = tmp_path / "other_version.jsonl"
    line = counterfactual_line(SIGN, "name_random", RENAMED)
    line["original"] = line["original"].replace("Sign of x.", "Return the sign of x.")
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(ValueError, match=r"toy/sign.*does not start with that problem's prompt"):
        evaluate_model(_config(tmp_path, path), problems=PROBLEMS, backend=ScriptedBackend(COMPLETIONS))


def test_code_execution_needs_opt_in(tmp_path, counterfactual_file, monkeypatch):
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    backend = ScriptedBackend(COMPLETIONS)
    with pytest.raises(PermissionError, match="HF_ALLOW_CODE_EVAL=1"):
        evaluate_model(_config(tmp_path, counterfactual_file), problems=PROBLEMS, backend=backend)
    assert backend.calls == []  # refused before any generation


def test_limit_and_concepts_filter(tmp_path, counterfactual_file, allow_exec):
    config = _config(tmp_path, counterfactual_file, limit=1, concepts=["name_random"], n_bootstrap=0)
    report = evaluate_model(config, problems=PROBLEMS, backend=ScriptedBackend(COMPLETIONS))
    assert [t["task_id"] for t in report.tasks] == ["toy/sign"]
    assert list(report.ccs["ccs_per_concept"]) == ["name_random"] and report.skipped == []


def test_ccs_by_site_count(tmp_path, counterfactual_file, allow_exec):
    lines = [json.loads(line) for line in counterfactual_file.read_text().splitlines()]
    lines[0]["sites"], lines[1]["sites"] = 2, 1
    two = dict(lines[1], concept="name_shuffle", sites=3)  # the same renamed program, read as 3 sites
    counterfactual_file.write_text("".join(json.dumps(line) + "\n" for line in [*lines, two]))
    report = evaluate_model(_config(tmp_path, counterfactual_file), problems=PROBLEMS,
                            backend=ScriptedBackend(COMPLETIONS))
    by_key = {(row["concept"], row["sites"]): row for row in report.per_sites}
    assert set(by_key) == {("if_else_flip", 2), ("name_random", 1), ("name_shuffle", 3)}
    for row in report.per_sites:  # one row per group here: its CCS is that concept's CCS
        assert row["rows"] == 1 and row["ccs"] == report.ccs["ccs_per_concept"][row["concept"]]
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "CCS by site count" in summary and (tmp_path / "out" / "ccs_by_sites.png").stat().st_size > 0


def test_without_counterfactuals_only_pass_at_k(tmp_path, allow_exec):
    config = EvaluationConfig(model="scripted", output_dir=str(tmp_path / "o"), n=2, k=(1,), timeout=1.0)
    backend = ScriptedBackend(COMPLETIONS)
    report = evaluate_model(config, problems=[SIGN], backend=backend)
    assert report.ccs is None and report.pass_at_k["original"] == {"pass@1": pytest.approx(0.5)}
    assert {r.prompt for call in backend.calls for r in call} == {SIGN_PROMPT}


@pytest.mark.slow
def test_cli_end_to_end_with_a_tiny_model(
    tmp_path, tiny_tokenizer, tiny_llama, counterfactual_file, allow_exec, capsys
):
    from procure_trl.cli import main

    model_dir = tmp_path / "tiny-model"
    tiny_llama.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    problems = tmp_path / "toy.jsonl"
    problems.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in PROBLEMS))
    out = tmp_path / "cli-out"
    rc = main([
        "evaluate", "--model", str(model_dir), "--benchmark", str(problems), "--counterfactuals",
        str(counterfactual_file), "--n", "2", "--k", "1,2", "--max-new-tokens", "8", "--batch-size", "4",
        "--backend", "transformers", "--timeout", "2", "--num-workers", "2", "--n-bootstrap", "50",
        "--output-dir", str(out),
    ])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["model"] == str(model_dir)
    assert len(report["tasks"]) == 2 and set(report["pass_at_k"]["counterfactual"]) == {"if_else_flip", "name_random"}
    # A random model does not solve anything: CCS is undefined, and says so instead of being NaN.
    assert report["ccs"]["ccs"] is None
    assert (out / "ccs_per_concept.png").exists() and (out / "pass_at_k.png").exists()
    lines = (out / "completions.jsonl").read_text().splitlines()
    assert len(lines) == 6 * 2  # every (prompt, sample) generated once
    assert "CCS n/a" in capsys.readouterr().out


def test_cli_bad_input_is_onecounterfactual_line(tmp_path, capsys, allow_exec):
    from procure_trl.cli import main

    rc = main(["evaluate", "--model", "m", "--n", "1", "--k", "1,5", "--output-dir", str(tmp_path)])
    assert rc == 2
    assert "k=[5] exceeds n=1" in capsys.readouterr().err


def test_cli_model_that_cannot_be_loaded_is_onecounterfactual_line(tmp_path, capsys, allow_exec):
    from procure_trl.cli import main

    rc = main(["evaluate", "--model", str(tmp_path / "no-model"), "--limit", "1", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err == f"procure evaluate: error: --model: no such folder: {tmp_path / 'no-model'}\n"


@pytest.fixture
def tiny_model_dir(tmp_path):
    from procure_trl.testing_utils import save_tiny_model

    save_tiny_model(str(tmp_path / "tiny"))
    return tmp_path / "tiny"


@pytest.mark.parametrize("flag,name", [("--model", "outputs/a/b"), ("--adapter", "outputs/x/no-adapter"),
                                       ("--adapter", "no-adapter-here")])
def test_a_missing_model_or_adapter_folder_is_one_line_naming_it(tmp_path, capsys, allow_exec, monkeypatch,
                                                                 tiny_model_dir, flag, name):
    """Not transformers' "Repo id must be in the form ...": a name that cannot be a Hub id, or one the offline
    cache does not hold, is a folder that is not there."""
    from procure_trl.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["evaluate", "--model", name if flag == "--model" else str(tiny_model_dir), "--limit", "1",
            "--output-dir", str(tmp_path / "o")] + (["--adapter", name] if flag == "--adapter" else [])
    capsys.readouterr()  # what saving the tiny model printed
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"procure evaluate: error: {flag}: no such folder: {tmp_path / name}")
    assert err.count("\n") == 1


def test_a_dataset_split_gives_the_tasks_and_counterfactuals(tmp_path, counterfactual_file, allow_exec):
    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset
    from procure_trl.dataset.rows import load_dataset_split

    problems = tmp_path / "toy.jsonl"
    problems.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in PROBLEMS))
    dataset = str(tmp_path / "cf")
    build_counterfactual_dataset(BuildConfig(input_jsonl=str(counterfactual_file), benchmarks="",
                                             problems=str(problems), output_dir=dataset, test_size=0.5))
    for split in ("train", "test"):
        rows = load_dataset_split(dataset, "all", split)
        config = _config(tmp_path, None, counterfactuals=None, dataset=dataset, split=split, benchmark=str(problems),
                         output_dir=str(tmp_path / split), n_bootstrap=0)
        report = evaluate_model(config, backend=ScriptedBackend(COMPLETIONS))
        assert [t["task_id"] for t in report.tasks] == list(dict.fromkeys(rows["task_id"]))  # that split's only
        scored = [(t["task_id"], v["concept"]) for t in report.tasks for v in t["variants"]]
        skipped = [(s["task_id"], s["concept"]) for s in report.skipped]
        given = [(t, c) for t, c in zip(rows["task_id"], rows["concept"]) if c != "original"]
        assert sorted(scored + skipped) == sorted(given)
        assert f"dataset {dataset} (config all, split {split})" in (tmp_path / split / "summary.md").read_text()


def test_dataset_and_counterfactuals_exclude_each_other(tmp_path, counterfactual_file):
    with pytest.raises(ValueError, match="either --dataset .* or --counterfactuals"):
        _config(tmp_path, counterfactual_file, dataset="me/cf")
