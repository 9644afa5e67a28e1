"""Consistency separated from accuracy, and rows that test their concept, through ``evaluate_model``.

Scripted completions on a toy problem with two rows: a swap whose text left to complete (``return c``) uses
nothing the swap touched, and a renaming whose text left to complete uses the new name. The report must
flag each row, score the dependent rows apart, and give the gap statistics of the CCS metric over the
report's own per-completion results.
"""

from __future__ import annotations

import json

import pytest

from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.dependence import row_dependence
from procure_trl.evaluation.run import evaluate_model
from procure_trl.evaluation.sampling import ScriptedBackend
from procure_trl.metrics.ccs import GAP_KEYS, concept_consistency_score
from procure_trl.problems import Problem

PROMPT = "def f(x):\n"
SOLUTION = "    a = x + 1\n    b = x * 2\n    c = 3\n    return c\n"
PROBLEM = Problem(task_id="toy/f", prompt=PROMPT, solution=SOLUTION, tests="assert f(1) == 3\n", entry_point="f")
ORIGINAL = PROMPT + SOLUTION
SWAPPED = PROMPT + "    b = x * 2\n    a = x + 1\n    c = 3\n    return c\n"
RENAMED = PROMPT + "    a = x + 1\n    b = x * 2\n    k = 3\n    return k\n"
KEPT = "    a = x + 1\n    b = x * 2\n    c = 3\n"  # the line cut keeps 3 of the 4 solution lines

COMPLETIONS = {
    PROMPT: ["    return 3\n", "    return 3\n"],
    PROMPT + KEPT: ["    return c\n", "    return c\n"],  # the reference of both rows: pass, pass
    PROMPT + "    b = x * 2\n    a = x + 1\n    c = 3\n": ["    return c\n", "    return 4\n"],  # pass, fail
    PROMPT + "    a = x + 1\n    b = x * 2\n    k = 3\n": ["    return k\n", "    return c\n"],  # pass, NameError
}


def _span(code: str, old: str, new: str) -> list[list[int]]:
    """The spans of ``code`` where ``new`` replaced ``old`` (same-length lines, compared character by character)."""
    spans, start = [], None
    for i, (x, y) in enumerate(zip(old, code)):
        if x != y and start is None:
            start = i
        elif x == y and start is not None:
            spans.append([start, i])
            start = None
    return spans + ([[start, len(code)]] if start is not None else [])


def _line(concept: str, code: str, spans: list[list[int]]) -> dict:
    return {"task_id": PROBLEM.task_id, "concept": concept, "status": "valid", "reason": "", "original": ORIGINAL,
            "code": code, "changed_spans": spans}


@pytest.fixture
def rows_file(tmp_path):
    swap = [[len(PROMPT), len(PROMPT) + 28]]  # both swapped statements
    lines = [_line("independent_swap", SWAPPED, swap), _line("name_random", RENAMED, _span(RENAMED, ORIGINAL, RENAMED))]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_row_facts_of_the_toy_rows():
    swap = row_dependence(
        ORIGINAL, SWAPPED, PROMPT + KEPT, SWAPPED[: len(PROMPT + KEPT)], [[len(PROMPT), len(PROMPT) + 28]]
    )
    assert (swap.remainder_differs, swap.dependent) == (False, False)
    rename = row_dependence(
        ORIGINAL, RENAMED, PROMPT + KEPT, RENAMED[: len(PROMPT + KEPT)], _span(RENAMED, ORIGINAL, RENAMED)
    )
    assert (rename.remainder_differs, rename.dependent) == (True, True)


def test_report_scores_all_rows_and_dependent_rows(tmp_path, rows_file, monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    config = EvaluationConfig(model="scripted", benchmark="toy", output_dir=str(tmp_path / "out"),
                              counterfactuals=str(rows_file), n=2, k=(1,), timeout=2.0, num_workers=1, n_bootstrap=200)
    report = evaluate_model(config, problems=[PROBLEM], backend=ScriptedBackend(COMPLETIONS))
    variants = {v["concept"]: v for v in report.tasks[0]["variants"]}
    assert (
        variants["independent_swap"]["remainder_differs"], variants["independent_swap"]["dependent"]
    ) == (False, False)
    assert (variants["name_random"]["remainder_differs"], variants["name_random"]["dependent"]) == (True, True)

    # The report's numbers are the metric's over the report's own per-completion results.
    order = ["independent_swap", "name_random"]
    preds = [variants[c]["counterfactual"]["passed"] for c in order]
    refs = [variants[c]["reference"]["passed"] for c in order]
    settings = dict(confidence=config.confidence, n_bootstrap=config.n_bootstrap, seed=config.seed)
    everything = concept_consistency_score(preds, refs, concepts=order, **settings)
    dependent = concept_consistency_score(preds[1:], refs[1:], concepts=order[1:], **settings)
    for key in ("ccs", "ccs_ci", *GAP_KEYS):
        assert report.ccs[key] == everything[key], key
        assert report.ccs_dependent[key] == dependent[key], key
    # swap: refs [1,1], preds [1,0] -> 2/4; rename: the same outcomes -> CCS 0.5 both ways
    assert report.ccs["ccs"] == pytest.approx(0.5) and report.ccs_dependent["rows"] == 1
    assert report.ccs["pass_gap"] == pytest.approx(-0.5)

    by_concept = {row["concept"]: row for row in report.per_concept}
    assert (
        by_concept["independent_swap"]["dependent_rows"], by_concept["independent_swap"]["remainder_differs_rows"]
    ) == (0, 0)
    assert by_concept["independent_swap"]["dependent"]["ccs"] is None  # no dependent row of this concept
    per_concept_gap = report.ccs_dependent["ccs_gap_per_concept"]["name_random"]
    assert by_concept["name_random"]["dependent"]["ccs_gap"] == per_concept_gap
    assert by_concept["name_random"]["ccs_expected"] == everything["ccs_expected_per_concept"]["name_random"]

    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["ccs_dependent"]["rows"] == 1 and "ccs_gap_ci" in saved["ccs"]
    assert "dependent" in saved["definitions"] and "ccs_expected" in saved["definitions"]
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "Dependent rows" in summary and "1 of 2 rows" in summary
    assert f"gap {report.ccs['ccs_gap']:+.3f}" in summary
