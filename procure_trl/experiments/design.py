"""The design of an experiment, checked before any GPU time is spent: what the test split holds, how well the
intervals cover, and the smallest differences the design detects.

* :class:`RowStructure`: the rows of a test split as the evaluation scores them: tasks, their CCS rows
  (concepts) and which rows share a reference prompt (two concepts cut at the same line sample one reference
  prompt once, so their rows share those completions). :func:`row_structure_of_split` reads it from a built
  dataset, cutting the prompts exactly as ``procure evaluate`` does.
* :class:`OutcomeModel`: a generator of pass/fail counts with known truth on that structure, in the spirit of
  the ``ScriptedBackend`` tests (outcomes given, not sampled from a model): task difficulty, cut and
  counterfactual shifts, the variant's effect, a seed effect per trained model and task-by-model noise, all on
  the logit scale, and ``n`` completions per prompt drawn as binomial counts (a shared reference prompt draws
  once for all its rows).
* :func:`coverage_study`: many simulated experiments; how often each interval method covers the true
  difference (computed exactly by Gauss-Hermite quadrature, not estimated).
* :func:`plan_experiment` / :func:`plan_markdown`: what ``procure experiment --plan`` prints.
* :func:`detectable_differences`: the smallest CCS and pass@1 differences detected with a given power, by the
  normal approximation ``(t_{1-alpha/2, df} + z_power) * SE`` with ``SE`` the clustered, seed-combined standard
  error of simulated experiments under the stated assumptions.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from procure_trl.metrics.clustered import (
    MetricSpec,
    clustered_difference,
    metric_specs,
    t_quantile,
)

__all__ = [
    "RowStructure",
    "OutcomeModel",
    "CoverageResult",
    "with_n",
    "row_structure_of_split",
    "benchmark_of",
    "simulate_tables",
    "true_difference",
    "coverage_study",
    "detectable_differences",
    "SIMULATION_COLUMNS",
    "plan_experiment",
    "plan_markdown",
]

#: The per-task columns the simulation fills (those pass@1 and CCS need).
SIMULATION_COLUMNS = ("problems", "rows", "pass@1", "consistent", "valid")


def benchmark_of(task_id: str) -> str:
    """The benchmark a task id comes from (by the loaders' id prefixes), ``"other"`` when none matches."""
    from procure_trl.problems import benchmark_of as known_benchmark_of

    return known_benchmark_of(task_id) or "other"


@dataclass(frozen=True)
class RowStructure:
    """The scored rows of a test split.

    Attributes:
        task_ids: every task of the split (each is scored on its benchmark prompt: pass@k).
        groups: per task, its reference prompts, each a tuple of the concepts whose rows share it.
    """

    task_ids: tuple[str, ...]
    groups: tuple[tuple[tuple[str, ...], ...], ...]

    def __post_init__(self) -> None:
        if len(self.task_ids) != len(self.groups):
            raise ValueError(f"{len(self.task_ids)} tasks but {len(self.groups)} group lists: give one per task")

    @property
    def n_tasks(self) -> int:
        return len(self.task_ids)

    @property
    def row_concepts(self) -> list[str]:
        return [c for task in self.groups for group in task for c in group]

    @property
    def n_rows(self) -> int:
        return len(self.row_concepts)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(row_task, row_group, group_task)`` index arrays: each row's task and reference group, each group's
        task."""
        row_task: list[int] = []
        row_group: list[int] = []
        group_task: list[int] = []
        for t, task in enumerate(self.groups):
            for group in task:
                for _ in group:
                    row_task.append(t)
                    row_group.append(len(group_task))
                group_task.append(t)
        as_int = lambda values: np.array(values, dtype=np.int64)  # noqa: E731
        return as_int(row_task), as_int(row_group), as_int(group_task)

    def rows_by(self) -> dict[str, dict[str, int]]:
        """Rows per benchmark and concept (``{benchmark: {concept: rows}}``), plus each benchmark's tasks under
        ``"tasks"``."""
        table: dict[str, Counter] = {}
        for task_id, task in zip(self.task_ids, self.groups):
            counts = table.setdefault(benchmark_of(task_id), Counter())
            counts["tasks"] += 1
            for group in task:
                counts.update(group)
        return {name: dict(counts) for name, counts in table.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": [{"task_id": t, "groups": [list(g) for g in groups]}
                          for t, groups in zip(self.task_ids, self.groups)]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowStructure:
        tasks = data["tasks"]
        return cls(tuple(t["task_id"] for t in tasks), tuple(tuple(tuple(g) for g in t["groups"]) for t in tasks))

    @classmethod
    def from_json(cls, path: str) -> RowStructure:
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))


def row_structure_of_split(dataset: str, split: str = "test", *, config: str = "all",
                           evaluation: Mapping[str, Any] | None = None) -> RowStructure:
    """The :class:`RowStructure` of a built dataset's split, its prompts cut as ``procure evaluate`` cuts them
    (``evaluation``: the cut settings, e.g. ``line_fraction``; the defaults otherwise).

    Rows the evaluation would skip (no cut possible) are left out, as the evaluation leaves them out.
    """
    from procure_trl.dataset.rows import load_dataset_split, records_from_rows
    from procure_trl.evaluation.config import EvaluationConfig
    from procure_trl.evaluation.selection import cut_rows
    from procure_trl.problems import load_problems

    task_ids, records = records_from_rows(load_dataset_split(dataset, config, split))
    names = sorted({benchmark_of(t) for t in task_ids} - {"other"})
    problems = {p.task_id: p for name in names for p in load_problems(name)}
    settings = {key: value for key, value in (evaluation or {}).items()
                if key in ("line_fraction", "if_else_at_branch")}
    rows, _ = cut_rows([r for r in records if r.task_id in problems], problems,
                       EvaluationConfig(model="(structure only)", dataset=dataset, **settings))
    by_task: dict[str, dict[str, list[str]]] = {t: {} for t in task_ids}
    for row in rows:
        by_task[row.task_id].setdefault(row.reference_prompt, []).append(row.concept.value)
    return RowStructure(tuple(task_ids), tuple(tuple(tuple(g) for g in by_task[t].values()) for t in task_ids))


@dataclass(frozen=True)
class OutcomeModel:
    r"""How simulated pass/fail outcomes are made (all effects on the logit scale of a prompt's pass rate).

    A task ``t`` has difficulty ``theta_t ~ N(task_mean, task_sd^2)``. A reference prompt (the original cut
    like its counterfactual) adds ``N(cut_shift, cut_sd^2)``; a counterfactual prompt adds a further
    ``N(counterfactual_shift, counterfactual_sd^2)`` to its reference's. Each trained model (a variant and a seed)
    adds ``N(0, seed_sd^2)`` to every prompt and ``N(0, task_seed_sd^2)`` per task; a variant adds its
    ``(original_effect, counterfactual_effect)``: the first to every prompt, the second to counterfactual prompts
    only. Every prompt gets ``n`` completions.

    Parameters:
        n (`int`, defaults to `5`): completions per prompt.
        task_mean (`float`, defaults to `-0.5`): mean task logit (a pass rate of about 0.4 on the originals).
        task_sd (`float`, defaults to `2.0`): spread of task difficulty.
        cut_shift (`float`, defaults to `0.5`): a cut prompt holds part of the solution: easier on average.
        cut_sd (`float`, defaults to `0.5`): spread of that help between cuts of one task.
        counterfactual_shift (`float`, defaults to `-0.4`): a rewritten program is a bit harder to continue.
        counterfactual_sd (`float`, defaults to `0.8`): spread of that between rows.
        seed_sd (`float`, defaults to `0.1`): between-seed spread of a trained model's overall level.
        task_seed_sd (`float`, defaults to `0.4`): task-by-model noise (a retrained model is better at some tasks).
    """

    n: int = 5
    task_mean: float = -0.5
    task_sd: float = 2.0
    cut_shift: float = 0.5
    cut_sd: float = 0.5
    counterfactual_shift: float = -0.4
    counterfactual_sd: float = 0.8
    seed_sd: float = 0.1
    task_seed_sd: float = 0.4


#: A variant's effect: (logit shift of every prompt, extra logit shift of counterfactual prompts).
Effect = tuple[float, float]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simulate_tables(structure: RowStructure, model: OutcomeModel, effects: Sequence[Effect], seeds: int,
                    rng: np.random.Generator, *, with_rows: bool = False) -> list[list[Any]]:
    """One simulated experiment: ``tables[v][s]``, the ``(tasks, SIMULATION_COLUMNS)`` table of variant ``v``
    (effect ``effects[v]``) trained with seed ``s``, on one fresh draw of the tasks' parameters.

    With ``with_rows``, each entry is ``(table, rows)`` where ``rows`` is ``(R, 2)``: each CCS row's passing
    reference and counterfactual completions (what a per-row bootstrap resamples).
    """
    row_task, row_group, group_task = structure.arrays()
    n_tasks, n = structure.n_tasks, model.n
    theta = rng.normal(model.task_mean, model.task_sd, n_tasks)
    cut = theta[group_task] + rng.normal(model.cut_shift, model.cut_sd, len(group_task))
    counterfactual = cut[row_group] + rng.normal(model.counterfactual_shift, model.counterfactual_sd, len(row_task))
    tables = []
    for original_effect, counterfactual_effect in effects:
        runs = []
        for _ in range(seeds):
            shift = rng.normal(0.0, model.seed_sd) + rng.normal(0.0, model.task_seed_sd, n_tasks) + original_effect
            passed = rng.binomial(n, _sigmoid(theta + shift))
            a = rng.binomial(n, _sigmoid(cut + shift[group_task]))[row_group]
            b = rng.binomial(n, _sigmoid(counterfactual + shift[row_task] + counterfactual_effect))
            table = np.zeros((n_tasks, len(SIMULATION_COLUMNS)))
            table[:, 0] = 1.0
            table[:, 1] = np.bincount(row_task, minlength=n_tasks)
            table[:, 2] = passed / n
            table[:, 3] = np.bincount(row_task, weights=a * b, minlength=n_tasks)
            table[:, 4] = np.bincount(row_task, weights=n * n - (n - a) * (n - b), minlength=n_tasks)
            runs.append((table, np.column_stack([a, b])) if with_rows else table)
        tables.append(runs)
    return tables


def _gauss_hermite(degree: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with ``sum(w * f(x)) = E[f(Z)]``, ``Z`` standard normal."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(degree)
    return nodes, weights / math.sqrt(2.0 * math.pi)


def _expected(model: OutcomeModel, effect: Effect) -> dict[str, float]:
    """A variant's expected pass@1 and its CCS expected per seed (pooled over an infinite task population),
    averaged over the seed effect; exact up to the quadrature."""
    x, w = _gauss_hermite()
    noise = math.hypot(model.seed_sd, model.task_seed_sd)
    pass1 = float(np.sum(w * _sigmoid(model.task_mean + math.hypot(model.task_sd, noise) * x + effect[0])))
    # given the seed effect u: task + cut + task-by-model noise is one normal X, the row's shift C another
    shared_sd = math.sqrt(model.task_sd**2 + model.cut_sd**2 + model.task_seed_sd**2)
    xs = model.task_mean + model.cut_shift + shared_sd * x[:, None]
    cs = model.counterfactual_shift + model.counterfactual_sd * x[None, :]
    weights_2d = w[:, None] * w[None, :]
    ccs = 0.0
    for u, wu in zip(model.seed_sd * x, w):
        reference = _sigmoid(xs + u + effect[0])
        counterfactual = _sigmoid(xs + cs + u + effect[0] + effect[1])
        consistent = np.sum(weights_2d * reference * counterfactual)
        valid = 1.0 - np.sum(weights_2d * (1.0 - reference) * (1.0 - counterfactual))
        ccs += wu * consistent / valid
    return {"pass@1": pass1, "ccs": float(ccs)}


def true_difference(model: OutcomeModel, other: Effect, baseline: Effect) -> dict[str, float]:
    """The true ``other - baseline`` difference of pass@1 and of CCS: the expected difference between models
    trained with a random seed, on the task population (the estimand of the seed-averaged difference).

    ``n`` does not enter: pass@1 and the pooled CCS are unbiased for their per-completion rates."""
    a, b = _expected(model, other), _expected(model, baseline)
    return {name: a[name] - b[name] for name in a}


def _row_bootstrap_interval(base: np.ndarray, other: np.ndarray, n: int, n_bootstrap: int, confidence: float,
                            seed: int) -> tuple[float, float] | None:
    """The per-row paired CCS interval that ``procure compare`` reports (rows resampled independently)."""
    from procure_trl.evaluation.compare import paired_ccs_difference

    def as_lists(counts: np.ndarray) -> list[tuple[list[int], list[int]]]:
        return [([1] * int(a) + [0] * (n - int(a)), [1] * int(b) + [0] * (n - int(b))) for a, b in counts]

    return paired_ccs_difference(as_lists(base), as_lists(other), confidence, n_bootstrap, seed)["ci"]


def _problem_bootstrap_interval(base: np.ndarray, other: np.ndarray, n_bootstrap: int, confidence: float,
                                seed: int) -> tuple[float, float] | None:
    """The per-problem paired pass@1 interval of one seed pair (``procure compare``'s method): the same
    resample for both runs, seeds not in it."""
    from procure_trl.metrics.bootstrap import paired_mean_difference

    return paired_mean_difference(base, other, confidence, n_bootstrap, seed)[1]


def _covers(interval: tuple[float, float] | None, truth: float) -> bool:
    return interval is not None and interval[0] <= truth <= interval[1]


@dataclass
class CoverageResult:
    """What :func:`coverage_study` measured: per method and metric, the share of experiments whose interval
    held the true difference, and the mean interval width."""

    experiments: int
    truth: dict[str, float]
    coverage: dict[str, dict[str, float]] = field(default_factory=dict)
    width: dict[str, dict[str, float]] = field(default_factory=dict)
    tasks: int = 0
    rows: int = 0
    seeds: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coverage_study(structure: RowStructure, model: OutcomeModel = OutcomeModel(), *,
                   baseline: Effect = (0.0, 0.0), other: Effect = (0.05, 0.3), seeds: int = 3,
                   experiments: int = 400, n_bootstrap: int = 400, confidence: float = 0.95,
                   seed: int = 0) -> CoverageResult:
    """Simulate ``experiments`` experiments (``baseline`` and ``other`` variant x ``seeds`` seeds) on
    ``structure`` and count how often each interval of the ``other - baseline`` difference holds the truth.

    Methods: ``clustered`` (:func:`~procure_trl.metrics.clustered.clustered_difference`, all seeds),
    ``row_bootstrap`` (``procure compare``'s paired difference of one seed pair: rows resampled for CCS,
    problems for pass@1).
    """
    rng = np.random.default_rng(seed)
    truth = true_difference(model, other, baseline)
    specs = {spec.name: spec for spec in metric_specs((1,), ccs_gap=False)}
    hits = {m: {"pass@1": 0, "ccs": 0} for m in ("clustered", "row_bootstrap")}
    widths = {m: {"pass@1": 0.0, "ccs": 0.0} for m in hits}
    for index in range(experiments):
        base_runs, other_runs = simulate_tables(structure, model, [baseline, other], seeds, rng, with_rows=True)
        for name in ("pass@1", "ccs"):
            estimate = clustered_difference(specs[name], SIMULATION_COLUMNS, [t for t, _ in base_runs],
                                            [t for t, _ in other_runs], n_bootstrap=n_bootstrap,
                                            confidence=confidence, seed=index)
            hits["clustered"][name] += _covers(estimate.interval, truth[name])
            widths["clustered"][name] += _width(estimate.interval)
        (base_table, base_rows), (other_table, other_rows) = base_runs[0], other_runs[0]
        intervals = {
            "ccs": _row_bootstrap_interval(base_rows, other_rows, model.n, n_bootstrap, confidence, index),
            "pass@1": _problem_bootstrap_interval(base_table[:, 2], other_table[:, 2], n_bootstrap, confidence, index),
        }
        for name, interval in intervals.items():
            hits["row_bootstrap"][name] += _covers(interval, truth[name])
            widths["row_bootstrap"][name] += _width(interval)
    return CoverageResult(
        experiments=experiments, truth=truth,
        coverage={m: {k: v / experiments for k, v in per.items()} for m, per in hits.items()},
        width={m: {k: v / experiments for k, v in per.items()} for m, per in widths.items()},
        tasks=structure.n_tasks, rows=structure.n_rows, seeds=seeds,
    )


def _width(interval: tuple[float, float] | None) -> float:
    return float("nan") if interval is None else interval[1] - interval[0]


def detectable_differences(structure: RowStructure, model: OutcomeModel = OutcomeModel(), *, seeds: int = 3,
                           power: float = 0.8, confidence: float = 0.95, experiments: int = 60,
                           n_bootstrap: int = 300, seed: int = 0) -> dict[str, dict[str, float]]:
    """The smallest pass@1 and CCS differences (absolute, in the metric's units) that the design detects with
    ``power``: ``(t_{(1 + confidence) / 2, df} + z_power) * SE`` (normal approximation), ``SE`` the root mean
    square of the clustered, seed-combined standard error over ``experiments`` simulated experiments without
    an effect, ``df`` their median degrees of freedom.

    Returns:
        ``{metric: {"detectable": ..., "se": ..., "df": ...}}`` for ``pass@1`` and ``ccs``.
    """
    if not 0.0 < power < 1.0:
        raise ValueError(f"power={power} must lie strictly between 0 and 1 (e.g. 0.8)")
    rng = np.random.default_rng(seed)
    specs: dict[str, MetricSpec] = {spec.name: spec for spec in metric_specs((1,), ccs_gap=False)}
    ses: dict[str, list[float]] = {"pass@1": [], "ccs": []}
    dfs: dict[str, list[float]] = {"pass@1": [], "ccs": []}
    for index in range(experiments):
        base, other = simulate_tables(structure, model, [(0.0, 0.0), (0.0, 0.0)], seeds, rng)
        for name in ses:
            estimate = clustered_difference(specs[name], SIMULATION_COLUMNS, base, other,
                                            n_bootstrap=n_bootstrap, confidence=confidence, seed=index)
            if estimate.se is not None and estimate.df is not None:  # set together
                ses[name].append(estimate.se)
                dfs[name].append(estimate.df)
    out = {}
    for name in ses:
        se = math.sqrt(float(np.mean(np.square(ses[name])))) if ses[name] else float("nan")
        df = float(np.median(dfs[name])) if dfs[name] else float("inf")
        multiplier = t_quantile(0.5 + confidence / 2, df) + NormalDist().inv_cdf(power)
        out[name] = {"detectable": multiplier * se, "se": se, "df": df}
    return out


def with_n(model: OutcomeModel, n: int) -> OutcomeModel:
    """``model`` with ``n`` completions per prompt (the experiment's evaluation ``n``)."""
    return replace(model, n=int(n))



def plan_experiment(config: Any, *, experiments: int = 40, n_bootstrap: int = 300, power: float = 0.8,
                    model: OutcomeModel = OutcomeModel()) -> dict[str, Any]:
    """What ``procure experiment --plan`` prints: per eval dataset, the rows per concept and benchmark of the
    eval split (built first when the experiment builds it), and the smallest pass@1 and CCS differences the
    design (its seeds, its ``n``) detects with ``power``, under ``model``'s assumptions.

    Args:
        config: the :class:`~procure_trl.experiments.config.ExperimentConfig`.
    """
    from procure_trl.experiments.runner import prepare_datasets

    paths = prepare_datasets(config)
    n = int(config.evaluation.get("n", 5))
    plans = {}
    for name in dict.fromkeys(plan.eval_dataset for plan in config.runs()):
        structure = row_structure_of_split(paths[name], config.eval_split, evaluation=config.evaluation)
        plans[name] = {
            "split": config.eval_split, "tasks": structure.n_tasks, "rows": structure.n_rows,
            "rows_by": structure.rows_by(), "seeds": len(config.seeds), "n": n, "power": power,
            "detectable": detectable_differences(structure, with_n(model, n), seeds=len(config.seeds), power=power,
                                                 experiments=experiments, n_bootstrap=n_bootstrap),
        }
    return {"name": config.name, "model": asdict(model), "datasets": plans}


def plan_markdown(plan: Mapping[str, Any]) -> str:
    """``plan`` (:func:`plan_experiment`) as the text ``procure experiment --plan`` prints."""
    lines = [f"# Design of {plan['name']}", ""]
    for name, entry in plan["datasets"].items():
        lines += [f"## `{name}`, {entry['split']} split: {entry['tasks']} tasks, {entry['rows']} CCS rows", ""]
        concepts = sorted({c for counts in entry["rows_by"].values() for c in counts} - {"tasks"})
        lines += ["| benchmark | tasks | " + " | ".join(concepts) + " | rows |",
                  "|---|---|" + "---|" * len(concepts) + "---|"]
        for benchmark, counts in entry["rows_by"].items():
            rows = [counts.get(c, 0) for c in concepts]
            lines.append(f"| {benchmark} | {counts.get('tasks', 0)} | " + " | ".join(map(str, rows))
                         + f" | {sum(rows)} |")
        lines += ["", f"Smallest differences detected with {entry['power']:.0%} power at 95 % confidence "
                  f"({entry['seeds']} seeds per variant, n = {entry['n']} completions per prompt, paired seed by "
                  "seed, task-clustered intervals):", ""]
        for metric, cell in entry["detectable"].items():
            lines.append(f"- {metric}: {cell['detectable']:.3f} (standard error {cell['se']:.3f}, "
                         f"{cell['df']:.1f} degrees of freedom)")
        lines.append("")
    model = plan["model"]
    lines.append("Assumed outcome model (logit scale; simulated, not measured): " + ", ".join(
        f"{key} {value}" for key, value in model.items() if key != "n") + ".")
    return "\n".join(lines) + "\n"
