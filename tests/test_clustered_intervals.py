"""Task-clustered, seed-combined intervals (procure_trl.metrics.clustered): the pieces, then the pairing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from procure_trl.metrics.bootstrap import percentile_interval, pooled_ratio_samples, resample_counts
from procure_trl.metrics.clustered import (
    TaskResults,
    cluster_resample_counts,
    clustered_difference,
    clustered_estimate,
    combine_seeds,
    metric_specs,
    t_quantile,
    task_table,
)

SPECS = {spec.name: spec for spec in metric_specs((1,), ccs_gap=False)}
COLUMNS = ("problems", "rows", "pass@1", "consistent", "valid")


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995])
def test_t_quantile_matches_closed_forms(p):
    # df = 1 is the Cauchy distribution, df = 2 has a closed-form quantile, df = inf is the normal
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-5)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-5)
    assert t_quantile(1 - p, 2) == pytest.approx(-t_quantile(p, 2), rel=1e-9)
    from statistics import NormalDist

    assert t_quantile(p, math.inf) == pytest.approx(NormalDist().inv_cdf(p))
    assert t_quantile(p, 1e4) == pytest.approx(NormalDist().inv_cdf(p), rel=1e-3)


def test_cluster_resample_counts_draw_every_cluster_count_once_per_resample():
    counts = cluster_resample_counts(7, 500, seed=3)
    assert counts.shape == (500, 7)
    assert (counts.sum(axis=1) == 7).all()
    # every cluster is drawn once per resample on average
    assert counts.mean(axis=0) == pytest.approx(np.ones(7), abs=0.15)
    with pytest.raises(ValueError):
        cluster_resample_counts(0, 10, seed=0)


def _task(task_id, original, rows):
    return TaskResults(task_id, tuple(original), tuple((tuple(r), tuple(c)) for r, c in rows))


def test_task_table_sums_pairs_per_task():
    tasks = [_task("A", [1, 0], [([1, 1], [1, 0]), ([0, 0], [1, 1])]), _task("B", [0, 0], [])]
    table = task_table(tasks, COLUMNS, [1])
    # CCS pair counts of a row: consistent = passing reference x passing counterfactual completions,
    # valid = pairs where at least one side passes
    assert table[0].tolist() == [1.0, 2.0, 0.5, 2 * 1 + 0 * 2, (4 - 0 * 1) + (4 - 2 * 0)]
    assert table[1].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def _tables(rng, n_tasks, shift):
    """Per-task tables of a run whose pass rate is the task's rate plus ``shift``."""
    rate = rng.uniform(0.1, 0.9, n_tasks)
    table = np.zeros((n_tasks, len(COLUMNS)))
    table[:, 0] = 1.0
    table[:, 1] = 2.0
    table[:, 2] = np.clip(rate + shift, 0, 1)
    table[:, 3] = np.clip(rate + shift, 0, 1) * 10
    table[:, 4] = 10.0
    return table


def test_difference_pairs_each_seed_with_the_baseline_of_the_same_seed():
    rng = np.random.default_rng(0)
    # seed effects far larger than the variant's effect (0.05): seed s of both variants shares its level
    seeds = [rng.uniform(0.2, 0.8, 50) for _ in range(3)]
    baseline = []
    other = []
    for level in seeds:
        table = np.zeros((50, len(COLUMNS)))
        table[:, 0], table[:, 1] = 1.0, 1.0
        table[:, 2], table[:, 3], table[:, 4] = level * 0.5, level * 5, 10.0
        baseline.append(table)
        shifted = table.copy()
        shifted[:, 2] += 0.05
        other.append(shifted)
    estimate = clustered_difference(SPECS["pass@1"], COLUMNS, baseline, other, n_bootstrap=200)
    assert estimate.per_seed == pytest.approx((0.05, 0.05, 0.05))
    assert estimate.value == pytest.approx(0.05)
    # the paired difference has no task or seed variation here: the interval collapses onto it
    assert estimate.interval[0] == pytest.approx(0.05, abs=1e-9)
    assert estimate.interval[1] == pytest.approx(0.05, abs=1e-9)
    assert (estimate.tasks, estimate.seeds) == (50, 3)
    # shuffled seeds (other seed 0 against baseline seed 1, ...) would see the seed levels' differences
    mismatched = clustered_difference(SPECS["pass@1"], COLUMNS, baseline[1:] + baseline[:1], other)
    assert mismatched.interval[1] - mismatched.interval[0] > 0.01


def test_ccs_interval_resamples_tasks_not_rows():
    """Copying every row of every task 5 times adds no information: the clustered interval stays, a row
    bootstrap's shrinks by about sqrt(5)."""
    rng = np.random.default_rng(1)
    tasks = []
    for index in range(60):
        p = rng.uniform(0, 1)
        rows = [(list(rng.binomial(1, p, 4)), list(rng.binomial(1, p, 4))) for _ in range(2)]
        tasks.append((f"T{index}", rows))
    single = task_table([_task(t, [1], rows) for t, rows in tasks], COLUMNS, [1])
    copied = task_table([_task(t, [1], rows * 5) for t, rows in tasks], COLUMNS, [1])
    one = clustered_estimate(SPECS["ccs"], COLUMNS, [single], n_bootstrap=2000, seed=5)
    five = clustered_estimate(SPECS["ccs"], COLUMNS, [copied], n_bootstrap=2000, seed=5)
    assert one.value == pytest.approx(five.value)
    assert five.interval == pytest.approx(one.interval, rel=1e-9)
    assert (one.rows, five.rows, five.tasks) == (120, 600, 60)

    def row_interval(rows):
        from procure_trl.metrics.ccs import row_pair_counts

        counts = np.array([row_pair_counts(c, r) for r, c in rows], dtype=float)
        weights = resample_counts(len(rows), 2000, 5)
        return percentile_interval(pooled_ratio_samples(counts[:, 0], counts[:, 1], weights), 0.95)

    rows_one = row_interval([r for _, rows in tasks for r in rows])
    rows_five = row_interval([r for _, rows in tasks for r in rows * 5])
    assert (rows_five[1] - rows_five[0]) < 0.6 * (rows_one[1] - rows_one[0])


def test_combine_seeds_adds_the_between_seed_variance():
    """Per-seed values far apart compared with their task noise: the interval holds the seeds' spread."""
    rng = np.random.default_rng(2)
    points = np.array([0.1, 0.3, 0.5])
    samples = points[:, None] + rng.normal(0, 0.001, (3, 400))
    out = combine_seeds(points, samples, n_tasks=100, confidence=0.95)
    assert out["value"] == pytest.approx(0.3)
    se_of_seed_mean = float(np.std(points, ddof=1)) / math.sqrt(3)
    assert out["se"] == pytest.approx(se_of_seed_mean, rel=0.02)
    # seed-dominated: about S - 1 = 2 degrees of freedom, so the t quantile is far above 1.96
    assert out["df"] == pytest.approx(2, rel=0.05)
    assert out["interval"][1] - out["value"] == pytest.approx(t_quantile(0.975, out["df"]) * out["se"])
    assert out["seed_sd"] == pytest.approx(float(np.std(points, ddof=1)), rel=0.02)


def test_one_seed_says_seed_variation_is_not_measured():
    rng = np.random.default_rng(3)
    base, other = _tables(rng, 40, 0.0), _tables(rng, 40, 0.1)
    estimate = clustered_difference(SPECS["pass@1"], COLUMNS, [base], [other], n_bootstrap=300)
    assert estimate.seeds == 1 and estimate.seed_sd is None
    assert "one seed" in estimate.method
    with pytest.raises(ValueError, match="pair seed by seed"):
        clustered_difference(SPECS["pass@1"], COLUMNS, [base], [other, other])
