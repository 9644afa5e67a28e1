"""Intervals that respect how an experiment's scores are made: tasks as clusters, seeds as repeated runs.

An evaluation scores *tasks*. One task holds its benchmark prompt's completions (pass@k) and several CCS rows
(one per concept), and those rows share completions (two concepts cut the original at the same line, so their
reference prompt is one prompt, sampled once). Rows of one task are therefore not independent, and resampling
rows, as a per-run bootstrap does, makes intervals too narrow. Training seeds add a second source of
variation: two seeds of one variant give two models, and a difference measured on one seed need not hold on
the next.

The method here, for a statistic of one variant or a paired difference of two variants, over ``S`` seeds:

* Every run is summarised per task by additive quantities (:func:`task_sums`: the task's pass@k estimate,
  its consistent and valid CCS pairs, ...); a metric (:class:`MetricSpec`) is a function of their sums over
  tasks, so pass@k is a mean over tasks and CCS a pooled ratio, exactly as each run reports them.
* The point estimate is the mean over seeds of the per-seed value (for a difference: variant seed ``s``
  minus baseline seed ``s``, the same tasks).
* **Task-clustered bootstrap**: each resample draws ``T`` tasks with replacement; a drawn task brings all its
  rows and completions, for every seed and both runs (one draw of weights serves all of them, so the pairing
  of tasks, of seeds and of runs is kept). ``V_T`` is the variance of the seeds' mean over resamples, and
  ``V_s`` the variance of seed ``s``'s own value.
* **Seeds**: the seeds' values vary by more than their task-level noise when training seeds matter. With
  ``s2`` the sample variance of the per-seed values, ``tau2 = max(0, s2 - (mean(V_s) - V_T) * S / (S - 1))``
  estimates the between-seed variance (``mean(V_s) - V_T`` is the part of the seeds' spread that comes from
  task-by-seed noise, which ``V_T`` already holds). Under ``value_st = effect + task_t + seed_s + noise_st``
  the total ``V = V_T + tau2 / S`` is unbiased for the variance of the seeds' mean.
* **Interval**: ``estimate +- t * sqrt(V)``, ``t`` the Student quantile with Welch-Satterthwaite degrees of
  freedom (``T - 1`` for the task part, ``S - 1`` for the seed part): with 3 seeds and seed-dominated
  variation the interval widens as it should. With one seed, nothing measures seed variation: the interval is
  the task part only, and :attr:`ClusteredEstimate.method` says so.

Everything is vectorised numpy; nothing here imports torch, transformers or evaluate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from procure_trl.metrics.ccs import row_pair_counts
from procure_trl.metrics.pass_at_k import estimate_pass_at_k

__all__ = [
    "MetricSpec",
    "ClusteredEstimate",
    "TaskResults",
    "metric_specs",
    "task_sums",
    "task_table",
    "cluster_resample_counts",
    "clustered_estimate",
    "clustered_difference",
    "t_quantile",
    "METHOD",
]

#: How the intervals are made, in words (the tables quote it).
METHOD = ("task-clustered bootstrap (all rows and completions of a task resampled together, the same draws for "
          "every seed and both runs) plus the between-seed variance; t interval with Welch-Satterthwaite df")

#: Sums of per-task columns, one array per column name, each of shape (...,) (e.g. one value per resample).
Sums = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the experiment tables, as a function of per-task sums.

    Attributes:
        name: the column's name (``pass@1``, ``ccs``, ``ccs_gap``, ...).
        columns: the per-task quantities it needs (keys of :func:`task_sums`).
        value: sums over tasks -> the metric (NaN where undefined), vectorised over any leading shape.
        needs_rows: whether it is measured on CCS rows (tasks without rows do not count in its ``tasks``).
    """

    name: str
    columns: tuple[str, ...]
    value: Callable[[Sums], np.ndarray]
    needs_rows: bool = False


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _pass_at_k_spec(k: int) -> MetricSpec:
    return MetricSpec(f"pass@{k}", (f"pass@{k}", "problems"), lambda s: _ratio(s[f"pass@{k}"], s["problems"]))


def _expected_pair_counts() -> Callable | None:
    """The exchangeable-sides expectation of :mod:`procure_trl.metrics.ccs_gap`, where the package has it."""
    try:
        from procure_trl.metrics.ccs_gap import expected_pair_counts
    except ImportError:
        return None
    return expected_pair_counts


def metric_specs(ks: Sequence[int] = (1, 5), *, ccs_gap: bool = True) -> list[MetricSpec]:
    """The metric columns of the main table: pass@k for each k, CCS, and ``ccs_gap`` (CCS minus the CCS expected
    if each row's two sides were exchangeable) when the package measures it and ``ccs_gap`` is set."""
    specs = [_pass_at_k_spec(k) for k in ks]
    specs.append(MetricSpec("ccs", ("consistent", "valid"), lambda s: _ratio(s["consistent"], s["valid"]), True))
    if ccs_gap and _expected_pair_counts() is not None:
        specs.append(MetricSpec(
            "ccs_gap", ("consistent", "valid", "expected_consistent", "expected_valid"),
            lambda s: _ratio(s["consistent"], s["valid"]) - _ratio(s["expected_consistent"], s["expected_valid"]),
            True,
        ))
    return specs


@dataclass(frozen=True)
class TaskResults:
    """One task of one run: pass/fail of the benchmark prompt's completions and of every CCS row's two sides.

    Attributes:
        task_id: the task.
        original: 0/1 per completion of the benchmark prompt (empty when not scored).
        rows: per CCS row, ``(reference results, counterfactual results)``.
    """

    task_id: str
    original: tuple[int, ...]
    rows: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()


def task_sums(task: TaskResults, ks: Sequence[int]) -> dict[str, float]:
    """The additive per-task quantities every :class:`MetricSpec` is built from.

    ``problems`` (1 when the benchmark prompt was scored), ``pass@k`` (the task's unbiased estimate, 0 when not
    scored or ``k`` exceeds its completions), ``rows``, ``consistent`` and ``valid`` (CCS pairs summed over the
    task's rows), and ``expected_consistent`` / ``expected_valid`` where ``ccs_gap`` is measured.
    """
    n, c = len(task.original), int(sum(task.original))
    out = {"problems": float(n > 0), "rows": float(len(task.rows))}
    for k in ks:
        out[f"pass@{k}"] = estimate_pass_at_k(n, c, k) if n >= k else 0.0
    counts = [row_pair_counts(cf, ref) for ref, cf in task.rows]
    out["consistent"] = float(sum(c for c, _ in counts))
    out["valid"] = float(sum(v for _, v in counts))
    expected = _expected_pair_counts()
    if expected is not None:
        if task.rows:
            a, n_ref, b, m = (np.array(x, dtype=float) for x in zip(
                *((sum(ref), len(ref), sum(cf), len(cf)) for ref, cf in task.rows)))
            ec, ev = expected(a, n_ref, b, m)
            out["expected_consistent"], out["expected_valid"] = float(np.sum(ec)), float(np.sum(ev))
        else:
            out["expected_consistent"] = out["expected_valid"] = 0.0
    return out


def task_table(tasks: Sequence[TaskResults], columns: Sequence[str], ks: Sequence[int]) -> np.ndarray:
    """``(len(tasks), len(columns))`` array of :func:`task_sums`, in the order of ``tasks`` and ``columns``."""
    table = np.zeros((len(tasks), len(columns)))
    for i, task in enumerate(tasks):
        sums = task_sums(task, ks)
        table[i] = [sums.get(column, 0.0) for column in columns]
    return table


def cluster_resample_counts(n_clusters: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """``(n_bootstrap, n_clusters)`` draw counts: resample ``b`` draws ``n_clusters`` clusters with replacement."""
    if n_clusters < 1 or n_bootstrap < 1:
        raise ValueError(f"need at least one cluster and one resample, got {n_clusters} and {n_bootstrap}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_clusters, size=(n_bootstrap, n_clusters))
    offsets = (np.arange(n_bootstrap) * n_clusters)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_bootstrap * n_clusters).reshape(n_bootstrap, n_clusters)


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` (> 0, ``inf`` allowed) degrees of freedom.

    Bisection on the CDF, integrated from the density by Simpson's rule (no scipy needed); accurate to about
    1e-6 for ``df >= 1``.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p={p} must lie strictly between 0 and 1")
    if df <= 0 or math.isnan(df):
        raise ValueError(f"df={df} must be > 0")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if math.isinf(df) or df > 1e7:
        return NormalDist().inv_cdf(p)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float) -> float:
        # x = tan(theta) maps [0, inf) onto [0, pi/2): the heavy tail of small df becomes a smooth integrand
        theta = np.linspace(0.0, math.atan(x), 4001)
        t = np.tan(theta)
        dens = np.exp(log_norm - (df + 1) / 2 * np.log1p(t * t / df)) / np.cos(theta) ** 2
        h = theta[1] - theta[0]
        return 0.5 + h / 3 * (dens[0] + dens[-1] + 4 * dens[1:-1:2].sum() + 2 * dens[2:-1:2].sum())

    low, high = 0.0, 1.0
    while cdf(high) < p:
        low, high = high, high * 2
        if high > 1e8:  # p within ~1e-8 of 1 at df < 1: no finite answer worth computing
            return math.inf
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True)
class ClusteredEstimate:
    """A metric (or a paired difference) over seeds, with its interval and what it rests on.

    Attributes:
        value: mean over seeds of the per-seed values (``None`` when undefined on some seed).
        interval: ``(low, high)`` or ``None`` (undefined value, or fewer than two tasks).
        per_seed: the per-seed values, in seed order.
        tasks: tasks resampled (those every run scored; for CCS metrics, those with rows).
        rows: CCS rows per seed and run (0 for pass@k).
        seeds: seeds combined.
        se: the standard error ``sqrt(V)``.
        df: degrees of freedom of the t quantile.
        seed_sd: the estimated between-seed standard deviation (``None`` with one seed).
        method: how the interval was made, in words.
    """

    value: float | None
    interval: tuple[float, float] | None
    per_seed: tuple[float | None, ...]
    tasks: int
    rows: int
    seeds: int
    se: float | None = None
    df: float | None = None
    seed_sd: float | None = None
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": self.interval, "per_seed": list(self.per_seed), "tasks": self.tasks,
                "rows": self.rows, "seeds": self.seeds, "se": self.se, "df": self.df, "seed_sd": self.seed_sd,
                "method": self.method}


def _finite(value: float | np.ndarray) -> float | None:
    return float(value) if np.isfinite(value) else None


def combine_seeds(point: np.ndarray, samples: np.ndarray, n_tasks: int, confidence: float) -> dict[str, Any]:
    """Point estimate, standard error, df and interval from per-seed values and their clustered resamples.

    Args:
        point: ``(S,)`` per-seed values on the observed tasks.
        samples: ``(S, B)`` per-seed values on each resample (the same task draws for every seed); resamples
            where some seed's value is undefined (NaN) are left out.
        n_tasks: tasks resampled (the task part's degrees of freedom are ``n_tasks - 1``).
        confidence: coverage of the interval.
    """
    point = np.asarray(point, dtype=float)
    samples = np.asarray(samples, dtype=float)
    n_seeds = len(point)
    out: dict[str, Any] = {"value": None, "interval": None, "se": None, "df": None, "seed_sd": None}
    if not np.all(np.isfinite(point)):
        return out
    out["value"] = float(point.mean())
    kept = samples[:, np.all(np.isfinite(samples), axis=0)]
    if n_tasks < 2 or kept.shape[1] < 2:
        return out
    v_mean = float(np.var(kept.mean(axis=0), ddof=1))
    if n_seeds == 1:
        task_part, seed_part, seed_df = v_mean, 0.0, 1
    else:
        # the seeds' own spread measures seed effects and task-by-seed noise together, unbiased (S - 1 df); the
        # resamples add what all seeds share: the sampling of the tasks themselves
        v_each = float(np.mean(np.var(kept, axis=1, ddof=1)))
        task_part = max(0.0, v_mean - (v_each - v_mean) / (n_seeds - 1))
        spread = float(np.var(point, ddof=1))
        seed_part, seed_df = spread / n_seeds, n_seeds - 1
        out["seed_sd"] = math.sqrt(max(0.0, spread - (v_each - v_mean) * n_seeds / (n_seeds - 1)))
    variance = task_part + seed_part
    denominator = task_part**2 / (n_tasks - 1) + seed_part**2 / seed_df
    df = variance**2 / denominator if denominator > 0 else math.inf
    se = math.sqrt(variance)
    half = t_quantile(0.5 + confidence / 2, df) * se
    out.update(se=se, df=df, interval=(out["value"] - half, out["value"] + half))
    return out


def _spec_values(spec: MetricSpec, totals: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """``spec``'s value from totals whose last axis follows ``columns``."""
    return spec.value({name: totals[..., columns.index(name)] for name in spec.columns})


def _check_runs(runs: Sequence[np.ndarray], columns: Sequence[str]) -> list[np.ndarray]:
    runs = [np.asarray(r, dtype=float) for r in runs]
    if not runs:
        raise ValueError("no runs: give one per-task table per seed")
    shapes = {r.shape for r in runs}
    if len(shapes) != 1 or runs[0].ndim != 2 or runs[0].shape[1] != len(columns):
        raise ValueError(f"every run's table must be (tasks, {len(columns)}) over the same tasks; got "
                         f"{sorted(shapes)}")
    return runs


def _kept_tasks(spec: MetricSpec, runs: Sequence[np.ndarray], columns: Sequence[str]) -> np.ndarray:
    """Tasks the metric is measured on: for CCS metrics those with rows in every run, else all."""
    keep = np.ones(runs[0].shape[0], dtype=bool)
    if spec.needs_rows and "rows" in columns:
        for run in runs:
            keep &= run[:, columns.index("rows")] > 0
    return keep


def _estimate(spec: MetricSpec, columns: Sequence[str], seeds: Sequence[tuple[np.ndarray, np.ndarray | None]],
              n_bootstrap: int, confidence: float, seed: int) -> ClusteredEstimate:
    keep = _kept_tasks(spec, [t for pair in seeds for t in pair if t is not None], columns)
    seeds = [(other[keep], None if base is None else base[keep]) for other, base in seeds]
    n_tasks = int(keep.sum())
    rows = int(seeds[0][0][:, columns.index("rows")].sum()) if spec.needs_rows and "rows" in columns else 0

    def value(table: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        totals = table.sum(axis=0) if weights is None else weights @ table
        return _spec_values(spec, totals, columns)

    weights = cluster_resample_counts(n_tasks, n_bootstrap, seed) if n_tasks else None
    points, samples = [], []
    for other, base in seeds:
        points.append(value(other, None) - (0.0 if base is None else value(base, None)))
        if weights is not None:
            samples.append(value(other, weights) - (0.0 if base is None else value(base, weights)))
    combined = combine_seeds(np.array(points, dtype=float),
                             np.array(samples) if samples else np.empty((len(points), 0)), n_tasks, confidence)
    method = METHOD if len(seeds) > 1 else METHOD.split(" plus ")[0] + " (one seed: seed variation not measured)"
    return ClusteredEstimate(
        value=combined["value"], interval=combined["interval"], per_seed=tuple(_finite(p) for p in points),
        tasks=n_tasks, rows=rows, seeds=len(seeds), se=combined["se"], df=combined["df"],
        seed_sd=combined["seed_sd"], method=method,
    )


def clustered_estimate(
    spec: MetricSpec, columns: Sequence[str], runs: Sequence[np.ndarray], *, n_bootstrap: int = 1000,
    confidence: float = 0.95, seed: int = 0,
) -> ClusteredEstimate:
    """One variant's ``spec`` over its seeds, with a task-clustered, seed-combined interval.

    Args:
        spec: the metric.
        columns: the names of the tables' columns (:func:`task_table`).
        runs: one ``(tasks, columns)`` table per seed, the same tasks in the same order.
        n_bootstrap: task resamples.
        confidence: coverage of the interval.
        seed: seed of the resamples.
    """
    runs = _check_runs(runs, columns)
    return _estimate(spec, columns, [(run, None) for run in runs], n_bootstrap, confidence, seed)


def clustered_difference(
    spec: MetricSpec, columns: Sequence[str], baseline: Sequence[np.ndarray], other: Sequence[np.ndarray], *,
    n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0,
) -> ClusteredEstimate:
    """``spec(other) - spec(baseline)``, seed by seed (``other[s]`` against ``baseline[s]``, the same seed),
    averaged over seeds, with a task-clustered, seed-combined interval (see the module docstring).

    Raises:
        ValueError: different numbers of seeds, or tables over different tasks.
    """
    if len(baseline) != len(other):
        raise ValueError(f"baseline has {len(baseline)} seeds and the other variant {len(other)}: pair seed by seed")
    tables = _check_runs([*baseline, *other], columns)
    half = len(baseline)
    return _estimate(spec, columns, list(zip(tables[half:], tables[:half])), n_bootstrap, confidence, seed)
