"""The CCS gap interval on the real rows of the HumanEval + MBPP test split, by simulation with known effects.

No model: the rows are the ones ``procure evaluate`` would score on the default test split
(:mod:`ccs_simulation` makes them with the rule engine, the dataset builder's split and the harness's cuts),
and each of 200 simulated evaluations draws the pass/fail outcome vectors of its ``n`` completions per side
(``n``: the evaluation's default).
"""

from __future__ import annotations

import numpy as np
import pytest
from ccs_simulation import covers_zero, default_samples, gap_results, split_test_rows
from mbpp_data import requires_full_mbpp

from procure_trl.concepts import Concept

SEEDS = 200
#: the claims are about the real test split; on the fixture's few MBPP rows the intervals are another matter
pytestmark = requires_full_mbpp


@pytest.fixture(scope="module")
def split_rows():
    rows = split_test_rows()
    # the simulation must run on real rows of every built-in concept, not on an empty split
    assert {c.value for c in Concept} <= set(rows.concepts)
    assert 0 < rows.count(dependent_only=True) <= len(rows)
    return rows


def _share(results, key, predicate):
    return float(np.mean([predicate(r[key]) for r in results]))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_concept_invariant_model_gap_interval_covers_zero(split_rows, p):
    results = gap_results(seed=int(p * 100), seeds=SEEDS, rows=len(split_rows), n=default_samples(),
                          p_reference=p, p_counterfactual=p)
    coverage = _share(results, "ccs_gap_ci", covers_zero)
    assert coverage >= 0.90, f"p={p}: the gap interval covers 0 in {coverage:.0%} of {SEEDS} seeds"
    # raw CCS is far from 1 for this perfectly concept-invariant model: it follows p / (2 - p)
    assert np.mean([r["ccs"] for r in results]) == pytest.approx(p / (2 - p), abs=0.03)


def test_counterfactual_half_as_good_gap_interval_excludes_zero(split_rows):
    results = gap_results(seed=7, seeds=SEEDS, rows=len(split_rows), n=default_samples(),
                          p_reference=0.6, p_counterfactual=0.3)
    power = _share(results, "ccs_gap_ci", lambda ci: not covers_zero(ci))
    assert power >= 0.80, f"the gap interval excludes 0 in only {power:.0%} of {SEEDS} seeds"
    assert all(r["ccs_gap"] < 0 for r in results)
