"""Strength kept end to end: a dataset built with ``--sites 2 --variants 2`` keeps ``sites`` and ``variant``, the
evaluation scores every row, and ``procure compare`` keeps every row too (key: task, concept, sites, variant)."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest

from procure_trl.dataset.builder import BuildConfig, build_counterfactual_dataset
from procure_trl.dataset.rows import load_dataset_split


@pytest.fixture(scope="module")
def strength_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("strength") / "data"
    build_counterfactual_dataset(BuildConfig(benchmarks="humaneval", limit=4, output_dir=str(out), test_size=1.0,
                                             sites="2", variants=2))
    return str(out)


def test_the_dataset_keeps_sites_and_variant(strength_dataset):
    rows = load_dataset_split(strength_dataset, "all", "test").to_list()
    originals = [r for r in rows if r["concept"] == "original"]
    counterfactuals = [r for r in rows if r["concept"] != "original"]
    assert originals and all(r["sites"] == 0 and r["variant"] is None for r in originals)
    assert counterfactuals and all(r["sites"] >= 2 and r["variant"] in (0, 1) for r in counterfactuals)
    per_key = Counter((r["task_id"], r["concept"]) for r in counterfactuals)
    assert max(per_key.values()) == 2  # two variants of one (task, concept): two rows, not one


def _completion(seed: int, programs: list[str]):
    """A scripted model: per (prompt, sample), decided by a hash (so the two runs differ), either the rest of a
    correct program the prompt is a cut of (passes) or nothing (fails)."""

    def complete(prompt: str, index: int) -> str:
        if zlib.crc32(f"{seed}:{index}:{prompt}".encode()) % 3 == 0:
            return ""
        return next((p[len(prompt):] for p in programs if p.startswith(prompt)), "")

    return complete


def test_compare_reports_every_row_the_evaluation_scored(strength_dataset, tmp_path, monkeypatch):
    from procure_trl.evaluation.compare import CompareConfig, compare_runs
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.run import evaluate_model
    from procure_trl.evaluation.sampling import ScriptedBackend

    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    from procure_trl.dataset.prompt_format import row_program

    rows = load_dataset_split(strength_dataset, "all", "test").to_list()
    programs = [row_program(row)[0] for row in rows]  # originals and counterfactuals, whole
    reports = []
    for seed in (0, 1):
        config = EvaluationConfig(model=f"scripted-{seed}", dataset=strength_dataset, split="test", n=2, k=(1,),
                                  num_workers=1, n_bootstrap=50, output_dir=str(tmp_path / f"run{seed}"))
        reports.append(evaluate_model(config, backend=ScriptedBackend(_completion(seed, programs))))
    assert all(report.ccs["ccs"] is not None for report in reports)
    scored = sum(len(t["variants"]) for t in reports[0].tasks)
    assert scored == reports[0].ccs["rows"] > len({(t["task_id"], v["concept"]) for t in reports[0].tasks
                                                   for v in t["variants"]})
    assert all(v["variant"] in (0, 1) and v["sites"] >= 2 for t in reports[0].tasks for v in t["variants"])
    comparison = compare_runs(CompareConfig(runs=[str(tmp_path / "run0"), str(tmp_path / "run1")],
                                            output_dir=str(tmp_path / "cmp"), n_bootstrap=50))
    assert [run["ccs"]["rows"] for run in comparison.runs] == [scored, scored]
    assert comparison.differences[0]["ccs"]["rows"] == scored


def _brute_ccs(rows):
    """CCS by enumerating every (counterfactual, reference) completion pair: consistent / valid."""
    consistent = valid = 0
    for reference, counterfactual in rows:
        for c in counterfactual:
            for r in reference:
                consistent += c and r
                valid += c or r
    return consistent / valid if valid else None


def test_ccs_against_sites_pools_the_concepts_of_each_site_count(tmp_path):
    import random

    from procure_trl.evaluation.compare import RowKey
    from procure_trl.experiments.strength import ccs_by_sites, sites_markdown, write_strength

    rng = random.Random(3)
    rows = {RowKey(f"T/{i}", concept, sites, variant): ([rng.randint(0, 1) for _ in range(4)],
                                                        [rng.randint(0, 1) for _ in range(4)])
            for i in range(6) for concept in ("if_else_flip", "independent_swap") for sites in (1, 2, 3)
            for variant in (0, 1)}
    scores = ccs_by_sites(rows, n_bootstrap=50)
    assert list(scores) == [1, 2, 3]
    for sites, part in scores.items():
        mine = [value for key, value in rows.items() if key.sites == sites]
        assert part["rows"] == len(mine) == 24
        assert part["ccs"] == pytest.approx(_brute_ccs(mine))
        low, high = part["ccs_ci"]
        assert low <= part["ccs"] <= high
    table = sites_markdown([("sft", scores), ("procure", {2: scores[2]})])
    assert "| run | 1 site | 2 sites | 3 sites |" in table and "(24 rows)" in table
    assert table.splitlines()[-1].count("|") == 5  # the run without 1 and 3 sites keeps empty cells
    assert write_strength([], str(tmp_path)) == ("", {})  # nothing scored: no section, no plot
