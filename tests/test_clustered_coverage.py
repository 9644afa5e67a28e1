"""The interval of a ProCURE - SFT difference covers the true difference as often as it says.

Simulated experiments on the real row structure of the HumanEval + MBPP test split (the default split of
``procure build --benchmarks humaneval,mbpp``: 228 tasks, their CCS rows per concept, rows of one task sharing a
reference prompt), outcomes from :class:`~procure_trl.experiments.design.OutcomeModel` with a known true
difference, 3 seeds with seed-level noise. The fixture ``humaneval_mbpp_test_rows.json`` was written by
``row_structure_of_split`` on that split (regenerate: ``procure build --output-dir DIR`` then
``RowStructure`` ``to_dict`` of ``row_structure_of_split(DIR)``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from procure_trl.experiments.design import (
    OutcomeModel,
    RowStructure,
    coverage_study,
    detectable_differences,
    simulate_tables,
    true_difference,
)

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "humaneval_mbpp_test_rows.json")


@pytest.fixture(scope="module")
def structure() -> RowStructure:
    return RowStructure.from_json(FIXTURE)


def test_fixture_is_the_real_row_structure(structure):
    counts = structure.rows_by()
    assert counts["humaneval"]["tasks"] + counts["mbpp"]["tasks"] == structure.n_tasks
    # several concepts per task, and rows that share a reference prompt
    assert sum(len({c for g in task for c in g}) > 1 for task in structure.groups) > 30
    assert sum(len(g) > 1 for task in structure.groups for g in task) > 50


def test_simulated_means_match_the_exact_truth(structure):
    """The quadrature truth is what the simulation's estimators converge to (a check of both)."""
    model = OutcomeModel(n=10)
    other = (0.3, 0.5)
    rng = np.random.default_rng(0)
    diffs = {"pass@1": [], "ccs": []}
    for _ in range(60):
        base, alt = simulate_tables(structure, model, [(0.0, 0.0), other], 1, rng)
        for name, value in (("pass@1", lambda t: t[:, 2].mean()), ("ccs", lambda t: t[:, 3].sum() / t[:, 4].sum())):
            diffs[name].append(value(alt[0]) - value(base[0]))
    truth = true_difference(model, other, (0.0, 0.0))
    for name, values in diffs.items():
        se = np.std(values, ddof=1) / np.sqrt(len(values))
        assert abs(np.mean(values) - truth[name]) < 4 * se + 0.003, name
    assert truth["pass@1"] > 0.02 and truth["ccs"] > 0.02


@pytest.mark.slow  # 400 simulated experiments x 2 metrics (about 30 s here)
def test_clustered_interval_covers_and_row_bootstrap_does_not(structure):
    result = coverage_study(structure, OutcomeModel(), seeds=3, experiments=400, n_bootstrap=400, seed=0)
    print("coverage", result.coverage, "width", result.width, "truth", result.truth)
    for metric in ("pass@1", "ccs"):
        assert result.coverage["clustered"][metric] >= 0.93, metric
    # procure compare's per-row (per-problem) bootstrap of one seed pair under-covers
    assert result.coverage["row_bootstrap"]["ccs"] < 0.85
    assert result.coverage["row_bootstrap"]["pass@1"] < 0.90
    assert (result.tasks, result.rows, result.seeds) == (structure.n_tasks, structure.n_rows, 3)


def test_detectable_differences_shrink_with_more_seeds_and_completions(structure):
    few = detectable_differences(structure, OutcomeModel(n=2), seeds=2, experiments=8, n_bootstrap=150)
    many = detectable_differences(structure, OutcomeModel(n=10), seeds=5, experiments=8, n_bootstrap=150)
    for metric in ("pass@1", "ccs"):
        assert 0 < many[metric]["detectable"] < few[metric]["detectable"], metric
    with pytest.raises(ValueError, match="power"):
        detectable_differences(structure, power=1.0)
