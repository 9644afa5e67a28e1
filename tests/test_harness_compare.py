"""`procure compare`: runs written by the harness itself, read back, put side by side, with paired differences."""

from __future__ import annotations

import json

import numpy as np
import pytest
from harness_rows import COMPLETIONS, FLIPPED, PROBLEMS, RENAMED, SIGN, SIGN_PROMPT, SWAP_BRANCHES, counterfactual_line

from procure_trl.evaluation.compare import (
    CompareConfig,
    RunScores,
    compare_runs,
    load_run,
    paired_ccs_difference,
    paired_difference,
    pass_at_k_with_interval,
)
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.run import evaluate_model
from procure_trl.evaluation.sampling import ScriptedBackend
from procure_trl.metrics.ccs import concept_consistency_score

# The "fine-tuned" model: like the base one, but it reads the flipped `if` right and solves `double` every time.
TUNED = {
    **COMPLETIONS, SIGN_PROMPT + "    if not x > 0:\n": [SWAP_BRANCHES] * 2,
    "def double(x):\n": ["    return x + x\n"] * 2
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real run folders, written by `evaluate_model`: the base model, and the same model with an adapter.

    Made once for the module: the tests only read them. They run in a scratch folder, so the relative adapter
    path never names a real adapter (a finished README chain leaves one at ./outputs/procure-qlora)."""
    tmp_path = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
        monkeypatch.chdir(tmp_path)
        return _evaluated_runs(tmp_path)


def _evaluated_runs(tmp_path):
    path = tmp_path / "counterfactuals.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in (
        counterfactual_line(SIGN, "if_else_flip", FLIPPED), counterfactual_line(SIGN, "name_random", RENAMED))))
    dirs = []
    for name, adapter, completions in (("base", None, COMPLETIONS), ("tuned", "outputs/procure-qlora", TUNED)):
        config = EvaluationConfig(model="tiny-coder", adapter=adapter, benchmark="toy", counterfactuals=str(path),
                                  output_dir=str(tmp_path / name), n=2, k=(1, 2), timeout=1.0, num_workers=2,
                                  n_bootstrap=200)
        evaluate_model(config, problems=PROBLEMS, backend=ScriptedBackend(completions))
        dirs.append(str(tmp_path / name))
    return dirs


def test_compare_two_runs_writes_tables_plots_and_the_paired_interval(runs, tmp_path):
    out = tmp_path / "comparison"
    comparison = compare_runs(CompareConfig(runs=runs, output_dir=str(out), n_bootstrap=300))
    base, tuned = comparison.runs
    assert (base["label"], tuned["label"]) == ("tiny-coder", "tiny-coder + adapter outputs/procure-qlora")

    # The same numbers as each run's own report: one estimator, read back from the per-completion results.
    for run, run_dir in zip(comparison.runs, runs):
        report = json.loads((tmp_path / run_dir / "report.json").read_text())
        assert run["pass_at_k"]["pass@1"]["value"] == pytest.approx(report["pass_at_k"]["original"]["pass@1"])
        assert run["pass_at_k"]["pass@2"]["value"] == pytest.approx(report["pass_at_k"]["original"]["pass@2"])
        assert run["ccs"]["value"] == pytest.approx(report["ccs"]["ccs"])
        assert {c: v["value"] for c, v in run["ccs_per_concept"].items()} == pytest.approx(
            report["ccs"]["ccs_per_concept"])
    # base: sign 1/2, double 1/2 -> 0.5; tuned: sign 1/2, double 2/2 -> 0.75
    assert (base["pass_at_k"]["pass@1"]["value"], tuned["pass_at_k"]["pass@1"]["value"]) == (0.5, 0.75)
    # base CCS 4/8 (see test_harness_run); tuned: the flip row becomes refs [1,1] preds [1,1] -> (4 + 2) / (4 + 4)
    assert (base["ccs"]["value"], tuned["ccs"]["value"]) == (0.5, 0.75)

    (diff,) = comparison.differences
    assert diff["pass@1"]["difference"] == pytest.approx(0.25) and diff["pass@1"]["problems"] == 2
    assert diff["ccs"]["difference"] == pytest.approx(0.25) and diff["ccs"]["rows"] == 2
    assert diff["ccs_per_concept"]["if_else_flip"]["difference"] == pytest.approx(0.5)
    assert diff["ccs_per_concept"]["name_random"]["difference"] == 0.0
    low, high = diff["ccs"]["ci"]
    assert low <= 0.25 <= high

    for name in ("pass_at_k.png", "ccs_per_concept.png", "difference_1.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["differences"][0]["ccs"]["difference"] == pytest.approx(0.25)
    table = (out / "comparison.md").read_text()
    assert "| `tiny-coder + adapter outputs/procure-qlora` | toy | 2 | 0.750 [" in table
    assert "| `tiny-coder + adapter outputs/procure-qlora` | 2 | +0.250 [" in table


def test_identical_runs_have_a_zero_width_paired_interval():
    """The paired bootstrap draws the same rows for both runs: a run against itself differs by exactly 0 in every
    resample, while each run's own interval is wide (rows differ a lot). An unpaired resampling would not give 0."""
    rows = {(f"T/{i}", "name_random"): ([1, 1, 0, i % 2], [i % 3 > 0, 1, 0, 0]) for i in range(40)}
    original = {f"T/{i}": [i % 2, i % 3 > 0, 1] for i in range(40)}
    run = RunScores("a", "a", "toy", 3, [1], original, rows)
    config = CompareConfig(runs=["a", "b"], n_bootstrap=500)
    diff = paired_difference(run, run, config)
    assert diff["ccs"]["difference"] == 0.0 and diff["ccs"]["ci"] == (0.0, 0.0)
    assert diff["ccs"]["gap_difference"] == 0.0 and diff["ccs"]["gap_ci"] == (0.0, 0.0)
    assert diff["pass@1"]["difference"] == 0.0 and diff["pass@1"]["ci"] == (0.0, 0.0)
    own = pass_at_k_with_interval(list(original.values()), 1, 0.95, 500, 0)["ci"]
    assert own[1] - own[0] > 0.1


def test_paired_ccs_difference_matches_the_estimator_on_common_rows():
    base = [([1, 1], [1, 0]), ([0, 1], [0, 0]), ([1, 1], [1, 1])]
    other = [([1, 1], [1, 1]), ([0, 1], [1, 1]), ([1, 1], [0, 1])]
    diff = paired_ccs_difference(base, other, 0.9, 400, 1)

    def ccs(rows):
        return concept_consistency_score([c for _, c in rows], [r for r, _ in rows], n_bootstrap=0)["ccs"]

    assert diff["difference"] == pytest.approx(ccs(other) - ccs(base))
    assert diff["ci"][0] <= diff["difference"] <= diff["ci"][1]


def test_runs_on_different_problems_share_nothing_to_pair():
    a = RunScores("a", "a", "humaneval", 1, [1], {"HumanEval/0": [1]}, {("HumanEval/0", "name_random"): ([1], [1])})
    b = RunScores("b", "b", "mbpp", 1, [1], {"MBPP/1": [0]}, {("MBPP/1", "name_random"): ([1], [0])})
    diff = paired_difference(a, b, CompareConfig(runs=["a", "b"]))
    assert diff["pass@1"] is None and diff["ccs"] is None and diff["ccs_per_concept"] == {}


def test_cli_compares_and_bad_input_is_one_line(runs, tmp_path, capsys):
    from procure_trl.cli import main

    assert main(["compare", *runs, "--output-dir", str(tmp_path / "cmp"), "--n-bootstrap", "50"]) == 0
    assert "Paired differences against `tiny-coder`" in capsys.readouterr().out
    assert main(["compare", runs[0], "--output-dir", str(tmp_path / "x")]) == 2
    assert "at least two runs" in capsys.readouterr().err
    assert main(["compare", runs[0], str(tmp_path), "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no report.json" in err and str(tmp_path) in err
    assert main(["compare", *runs, "--k", "5", "--output-dir", str(tmp_path / "x")]) == 2
    assert "k=[5] exceeds" in capsys.readouterr().err


def test_same_model_and_adapter_get_their_folder_in_the_label(runs, tmp_path):
    comparison = compare_runs(CompareConfig(runs=[runs[0], runs[0]], output_dir=str(tmp_path / "c"), n_bootstrap=20))
    labels = [run["label"] for run in comparison.runs]
    assert labels == ["tiny-coder (base)", "tiny-coder (base)"]  # the same folder twice: the folder is all there is
    assert load_run(runs[1]).label != load_run(runs[0]).label


def test_harness_plot_titles_name_model_and_adapter(runs, monkeypatch, tmp_path):
    """Per-run plots: a base model and its adapter never share a title."""
    import procure_trl.evaluation.report as report_module

    titles = []
    monkeypatch.setattr(report_module, "plot_ccs_per_concept", lambda rows, path, title: titles.append(title) or path)
    monkeypatch.setattr(report_module, "plot_pass_at_k", lambda p, k, path, title: titles.append(title) or path)
    from procure_trl.evaluation.run import EvaluationReport

    for run_dir in runs:
        saved = json.loads((tmp_path / run_dir / "report.json").read_text())
        config = EvaluationConfig(**{**saved["config"], "counterfactuals": None, "output_dir": str(tmp_path / "re")})
        report = EvaluationReport(config, saved["pass_at_k"], saved["ccs"], saved["per_concept"], saved["tasks"],
                                  saved["skipped"], saved["timeouts"])
        report_module.write_report(report, str(tmp_path / "re"))
    assert len(titles) == 4 and len(set(titles)) == 4
    assert "tiny-coder + adapter outputs/procure-qlora" in titles[2]


def test_given_labels_name_the_runs_in_tables_and_differences(runs, tmp_path, capsys):
    from procure_trl.cli import main

    comparison = compare_runs(CompareConfig(runs=runs, output_dir=str(tmp_path / "c"), n_bootstrap=20,
                                            labels=["sft", "procure"]))
    assert [run["label"] for run in comparison.runs] == ["sft", "procure"]
    assert (comparison.differences[0]["baseline"], comparison.differences[0]["other"]) == ("sft", "procure")
    assert "| `procure` |" in (tmp_path / "c" / "comparison.md").read_text()
    assert main(["compare", *runs, "--labels", "only-one", "--output-dir", str(tmp_path / "x")]) == 2
    assert "1 given for 2 runs" in capsys.readouterr().err


def test_gap_statistics_and_dependent_rows_read_back_from_the_reports(runs, tmp_path):
    comparison = compare_runs(CompareConfig(runs=runs, output_dir=str(tmp_path / "g"), n_bootstrap=100))
    for run, run_dir in zip(comparison.runs, runs):
        report = json.loads((tmp_path / run_dir / "report.json").read_text())
        for key in ("ccs_expected", "ccs_gap", "pass_gap", "pass_gap_p"):
            assert run["ccs"][key] == pytest.approx(report["ccs"][key]), key
            for concept, cell in run["ccs_per_concept"].items():
                assert cell[key] == pytest.approx(report["ccs"][f"{key}_per_concept"][concept]), (key, concept)
        flagged = [v for t in report["tasks"] for v in t["variants"] if v["dependent"]]
        assert run["ccs_dependent"]["rows"] == len(flagged) == report["ccs_dependent"]["rows"]
        assert run["ccs_dependent"]["value"] == pytest.approx(report["ccs_dependent"]["ccs"])
    base, tuned = comparison.runs
    (diff,) = comparison.differences
    assert diff["ccs"]["gap_difference"] == pytest.approx(tuned["ccs"]["ccs_gap"] - base["ccs"]["ccs_gap"])
    assert diff["ccs_dependent"]["rows"] == base["ccs_dependent"]["rows"]
    table = (tmp_path / "g" / "comparison.md").read_text()
    assert "| CCS gap | pass gap | dependent rows |" in table and "Δ CCS gap [interval]" in table
    assert f"{tuned['ccs']['ccs_gap']:+.3f}" in table


def test_a_run_that_only_solves_more_gains_ccs_but_not_gap():
    """Both runs are concept-invariant (the same pass rate on both sides of every row); the second solves more.
    Raw CCS rises with the pass rate; the paired difference of the gap stays at 0."""
    rng = np.random.default_rng(0)
    excluded, covered = 0, 0
    for trial in range(10):
        def run(p, name):
            rows = {(f"T/{i}", "name_random"): ((rng.random(5) < p).astype(int).tolist(),
                                                (rng.random(5) < p).astype(int).tolist()) for i in range(300)}
            return RunScores(name, name, "toy", 5, [1], {}, rows)

        diff = paired_difference(run(0.3, "base"), run(0.7, "tuned"), CompareConfig(runs=["a", "b"], seed=trial))
        excluded += diff["ccs"]["ci"][0] > 0
        covered += diff["ccs"]["gap_ci"][0] <= 0 <= diff["ccs"]["gap_ci"][1]
    assert excluded == 10  # CCS "gains" about 0.54 - 0.18 every time
    assert covered >= 8
