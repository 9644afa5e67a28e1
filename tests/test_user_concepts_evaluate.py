"""Rows of user-defined concepts (``procure perturb --concept-rules``) are scored by ``procure evaluate``, from a
counterfactual file and from a dataset, and every per-concept table counts them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import procure_trl
from procure_trl.concepts import Concept, concept_names_in
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.run import evaluate_model, row_accounting
from procure_trl.evaluation.sampling import ScriptedBackend

RULES = Path(procure_trl.__file__).parent / "rules" / "example_concepts.yml"
USER_CONCEPTS = ("negated_equality", "explicit_increment")


@pytest.fixture(scope="module")
def user_rows(tmp_path_factory):
    """``procure perturb`` with the example rules on the first HumanEval problems: its valid rows."""
    from procure_trl import concepts
    from procure_trl.cli import main

    out = tmp_path_factory.mktemp("perturb") / "user.jsonl"
    registered = dict(concepts._USER_CONCEPTS)
    try:
        rc = main(["perturb", "--benchmark", "humaneval", "--limit", "40", "--concept-rules", str(RULES),
                   "--concepts", ",".join(USER_CONCEPTS), "--output", str(out), "--no-progress"])
    finally:
        # `procure evaluate` runs in a process of its own, which never read the rules: forget them here too.
        concepts._USER_CONCEPTS.clear()
        concepts._USER_CONCEPTS.update(registered)
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    valid = [line for line in lines if line["status"] == "valid"]
    assert {line["concept"] for line in valid} == set(USER_CONCEPTS)  # both rules rewrote some program
    return out, valid


def _writes_the_program(valid):
    """A scripted model that writes the rest of whichever program (a benchmark solution, or a counterfactual)
    the prompt starts, as a model that knows the solution would."""
    from procure_trl.problems import load_problems

    programs = [p.prompt + p.solution for p in load_problems("humaneval")] + [line["code"] for line in valid]

    def complete(prompt: str, index: int) -> str:
        for program in programs:
            if program.startswith(prompt):
                return program[len(prompt):]
        raise AssertionError(f"no program starts with the prompt {prompt[-60:]!r}")

    return ScriptedBackend(complete)


def _config(tmp_path, name, **kwargs):
    return EvaluationConfig(model="scripted", output_dir=str(tmp_path / name), n=1, k=(1,), n_bootstrap=20,
                            timeout=5.0, num_workers=2, stop_sequences=(), **kwargs)


def _check_scored(report, valid):
    per_concept = {row["concept"]: row for row in report.per_concept}
    for concept in USER_CONCEPTS:
        rows = [line for line in valid if line["concept"] == concept and line["task_id"] in
                {t["task_id"] for t in report.tasks}]
        if not rows:
            continue
        entry = per_concept[concept]
        assert entry["rows_given"] == len(rows) == entry["rows"] + entry["skipped"]
        assert entry["rows"] > 0 and entry["pass_at_k_reference"]["pass@1"] == 1.0
        # The reference programs pass on both sides: perfectly consistent.
        assert entry["ccs"] == 1.0 and report.ccs["ccs_per_concept"][concept] == 1.0
        assert report.pass_at_k["counterfactual"][concept]["pass@1"] == 1.0
    return per_concept


@pytest.mark.slow
def test_user_concept_rows_are_scored_from_a_counterfactual_file(tmp_path, user_rows, monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    path, valid = user_rows
    tasks = sorted({line["task_id"] for line in valid}, key=lambda t: int(t.split("/")[1]))
    limit = int(tasks[-1].split("/")[1]) + 1  # every task with a valid row
    report = evaluate_model(_config(tmp_path, "file", counterfactuals=str(path), limit=limit),
                            backend=_writes_the_program(valid))
    per_concept = _check_scored(report, valid)
    assert set(per_concept) == set(USER_CONCEPTS)
    summary = (tmp_path / "file" / "summary.md").read_text()
    assert all(f"| {concept} |" in summary for concept in USER_CONCEPTS)


@pytest.mark.slow
def test_user_concept_rows_are_scored_from_a_dataset(tmp_path, user_rows, monkeypatch):
    from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    path, valid = user_rows
    dataset = str(tmp_path / "cf")
    build_counterfactual_dataset(BuildConfig(input_jsonl=str(path), benchmarks="humaneval", output_dir=dataset,
                                             test_size=0.5))
    scored = []
    for split in ("train", "test"):
        report = evaluate_model(_config(tmp_path, split, dataset=dataset, split=split),
                                backend=_writes_the_program(valid))
        _check_scored(report, valid)
        scored += [(t["task_id"], v["concept"]) for t in report.tasks for v in t["variants"]]
        scored += [(s["task_id"], s["concept"]) for s in report.skipped]
    assert sorted(scored) == sorted((line["task_id"], line["concept"]) for line in valid)


def test_concept_order_keeps_user_concepts_after_the_built_in_ones():
    names = ["my_rule", Concept.NAME_RANDOM, "if_else_flip", "my_rule", "other_rule"]
    assert concept_names_in(names) == ["if_else_flip", "name_random", "my_rule", "other_rule"]
    accounting = row_accounting(["my_rule", "if_else_flip"], ["my_rule"],
                                [{"concept": "if_else_flip", "reason": "no_conditional"}])
    assert accounting == {"if_else_flip": {"given": 1, "scored": 0, "skipped": {"no_conditional": 1}},
                          "my_rule": {"given": 1, "scored": 1, "skipped": {}}}


def test_dataset_card_counts_user_concepts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from procure_trl.perturb.scale.card import count_output, format_counts_table

    (tmp_path / "data").mkdir()
    table = pa.table({
        "concept": ["original", "my_rule", "name_random", "my_rule"],
        "tests_run": [True, True, False, True],
        "outcomes": [["my_rule:valid", "if_else_flip:not_applicable", "other_rule:rejected:tests"], None, None, None],
    })
    pq.write_table(table, tmp_path / "data" / "train-00000-of-00001.parquet")
    counts = count_output(tmp_path)
    assert list(counts.concepts) == ["if_else_flip", "name_random", "my_rule", "other_rule"]
    assert counts.concepts["my_rule"].rows == 2 and counts.concepts["other_rule"].rejected == 1
    assert "| my_rule | 2 | 2 | 0 | 0 | 0 |" in format_counts_table(counts)


def test_llm_summary_lists_every_concept_of_its_rows():
    from procure_trl.perturb.llm.client import ClientStats
    from procure_trl.perturb.llm.generator import GenerationReport, format_llm_summary
    from procure_trl.perturb.records import CounterfactualRecord

    rows = [CounterfactualRecord(task_id="T/1", concept=name, status="valid", original="x = 1\n", code="x = 2\n",
                                 generator="ast-grep" if name == "my_rule" else "llm", attempts=1)
            for name in ("my_rule", "if_else_flip")]
    report = GenerationReport(rows=rows, new_rows=2, resumed_rows=0, stats=ClientStats(), model="m", repair_rounds=0,
                              price=None)
    lines = format_llm_summary(report).splitlines()
    assert [line.split()[0] for line in lines if line.startswith(("if_else_flip", "my_rule"))] == [
        "if_else_flip", "my_rule"]
