"""The experiment table shows, beside CCS, the CCS gap and the paired pass-rate test of each run, with the numbers
the evaluation report computed (no model: a report's CCS output from the estimator, runs as plain objects)."""

from __future__ import annotations

from types import SimpleNamespace

from procure_trl.evaluation.report import format_p, format_signed
from procure_trl.experiments.runner import _evaluation_summary
from procure_trl.experiments.table import experiment_markdown, experiment_rows
from procure_trl.metrics.ccs import GAP_KEYS, concept_consistency_score


def _run(name: str, ccs: dict, state: str = "done") -> SimpleNamespace:
    report = SimpleNamespace(pass_at_k={"original": {"pass@1": 0.5}}, ccs=ccs)
    evaluation = {"state": "done", "seconds": 1.0, **_evaluation_summary(report)} if state == "done" else {}
    plan = SimpleNamespace(variant=SimpleNamespace(name=name, description=""), seed=0, settings={},
                           run_dir=f"runs/{name}", evaluation_dir=f"runs/{name}/evaluation", downstream_tasks=[])
    return SimpleNamespace(plan=plan, state=state, error=None if state == "done" else "boom",
                           status={"train": {}, "evaluate": evaluation})


def _result(outcomes) -> SimpleNamespace:
    config = SimpleNamespace(name="gap", description="", train_split="train", eval_split="test", variants=[])
    return SimpleNamespace(config=config, outcomes=outcomes)


def test_table_shows_the_ccs_gap_and_the_paired_pass_rate_test_of_each_run():
    # counterfactual passes far less often than the reference: negative gaps, small p
    refs = [[1, 1, 1, 0], [1, 1, 0, 1], [1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0]] * 3
    preds = [[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]] * 3
    ccs = concept_consistency_score(preds, refs, n_bootstrap=200, seed=1, n_permutations=500)
    result = _result([_run("worse", ccs), _run("failed", {}, state="failed")])
    rows = experiment_rows(result, [])
    assert all(rows[0][key] == ccs[key] for key in GAP_KEYS)
    assert all(rows[1][key] is None for key in GAP_KEYS)  # a failed run has no scores
    table = experiment_markdown(result, rows, [])
    assert "| CCS gap [interval] | pass gap [interval], p |" in table
    line = next(line for line in table.splitlines() if line.startswith("| worse |"))
    assert format_signed(ccs["ccs_gap"], ccs["ccs_gap_ci"]) in line and ccs["ccs_gap"] < 0
    pass_cell = f"{format_signed(ccs['pass_gap'], ccs['pass_gap_ci'])}, p {format_p(ccs['pass_gap_p'])}"
    assert pass_cell in line and ccs["pass_gap"] < 0 and ccs["pass_gap_p"] < 0.05
    failed = next(line for line in table.splitlines() if line.startswith("| failed |"))
    assert failed.endswith("| n/a | n/a | n/a | n/a | n/a | failed |")  # CCS, gap, pass gap, rows, seconds
