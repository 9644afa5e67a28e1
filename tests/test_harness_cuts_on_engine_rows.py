"""Cuts on real rule-engine rows: every scored prompt pair tests its concept, and every row is accounted for.

The rows come from ``procure perturb`` (its CLI is the contract) on HumanEval and MBPP: the first problems of
each in the normal suite, the whole corpora in the slow one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from procure_trl.concepts import Concept
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.counterfactuals import load_counterfactual_variants
from procure_trl.evaluation.prompts import SKIP_REASONS, prompt_holds_change
from procure_trl.evaluation.run import cut_rows, row_accounting
from procure_trl.problems import load_problems

BENCHMARKS = ("humaneval", "mbpp")


def _engine_rows(benchmark: str, out: Path, limit: int | None) -> Path:
    path = out / f"{benchmark}.jsonl"
    command = [sys.executable, "-m", "procure_trl.cli", "perturb", "--benchmark", benchmark, "--output", str(path),
               "--seed", "0", "--num-workers", "2", "--no-progress"] + (["--limit", str(limit)] if limit else [])
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    return path


def _check_cuts(benchmark: str, path: Path, tmp_path: Path) -> dict[str, dict]:
    problems = {p.task_id: p for p in load_problems(benchmark)}
    variants = load_counterfactual_variants(path, problems, benchmark)
    config = EvaluationConfig(model="none", output_dir=str(tmp_path))
    rows, skipped = cut_rows(variants, problems, config)
    by_key = {(v.task_id, v.concept): v for v in variants}
    for row in rows:
        variant = by_key[(row.task_id, row.concept)]
        where = f"{benchmark} {row.task_id} {row.concept.value}"
        assert row.reference_prompt != row.counterfactual_prompt, f"{where}: identical prompts scored"
        assert prompt_holds_change(variant.code, row.counterfactual_prompt, variant.changed_spans), (
            f"{where}: the counterfactual prompt holds no changed span"
        )
        assert variant.code.startswith(row.counterfactual_prompt.rstrip("\n"))
        assert variant.original.startswith(row.reference_prompt.rstrip("\n"))
        if row.concept is not Concept.IF_ELSE_FLIP:  # the flip is cut at the same `if`, whose branch may move
            # the same place: both prompts stop after the same number of lines
            assert row.reference_prompt.count("\n") == row.counterfactual_prompt.count("\n"), where
    assert all(s["reason"] in SKIP_REASONS for s in skipped)
    accounting = row_accounting([v.concept for v in variants], [r.concept for r in rows], skipped)
    for concept, counts in accounting.items():
        assert counts["scored"] + sum(counts["skipped"].values()) == counts["given"], f"{benchmark} {concept}: {counts}"
    assert sum(c["given"] for c in accounting.values()) == len(variants)
    return accounting


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_first_problems_cut_with_their_change(benchmark, tmp_path):
    accounting = _check_cuts(benchmark, _engine_rows(benchmark, tmp_path, limit=40), tmp_path)
    assert sum(c["scored"] for c in accounting.values()) > 20  # the check ran on real rows, not on none


@pytest.mark.slow
def test_whole_corpora_cut_with_their_change(tmp_path):
    from mbpp_data import FULL_MBPP_DIR

    if FULL_MBPP_DIR is None:
        pytest.skip("needs the full MBPP files")
    for benchmark in BENCHMARKS:
        accounting = _check_cuts(benchmark, _engine_rows(benchmark, tmp_path, limit=None), tmp_path)
        print(benchmark, {c: (v["given"], v["scored"], v["skipped"]) for c, v in accounting.items()})
