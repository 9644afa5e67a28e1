"""Simulated outcome vectors on the real rows of the HumanEval + MBPP test split (for the CCS gap tests and
``benchmarks/ccs_gap_power.py``).

The rows are made the way a user makes them, without a model: the rule engine on HumanEval and MBPP, the
dataset builder's rows and its default task split, then the harness's cuts (:func:`procure_trl.evaluation.run.cut_rows`)
with the default evaluation settings; only the scored rows of the ``test`` split are kept. The engine runs
without executing the tests (``validate=False``, a few seconds instead of minutes): validation rejects few
rule-engine rows, so the counts are those of a validated build to within a few rows. The dataset builder
splits by task before anything else is known about a task, so only the test split's problems are perturbed.

A simulated model gives every completion of a row's reference side a pass with probability ``p_reference`` and
every completion of its counterfactual side one with ``p_counterfactual``, independently; scores then come from
the package's own functions.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from procure_trl.dataset.builder import BuildConfig, load_tasks
from procure_trl.dataset.rows import build_rows, records_from_rows, split_by_task
from procure_trl.evaluation.config import EvaluationConfig
from procure_trl.evaluation.run import cut_rows
from procure_trl.metrics.bootstrap import resample_counts
from procure_trl.metrics.ccs_gap import gap_summary
from procure_trl.perturb.engine import GenerationConfig, generate_counterfactuals
from procure_trl.problems import load_problems

BENCHMARKS = ("humaneval", "mbpp")


def _default(cls, name: str):
    return next(f.default for f in fields(cls) if f.name == name)


@dataclass(frozen=True)
class SplitRows:
    """The scored rows of the test split: each row's concept and whether its remainder depends on the change."""

    concepts: tuple[str, ...]
    dependent: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.concepts)

    def count(self, concept: str | None = None, dependent_only: bool = False) -> int:
        return sum(1 for c, d in zip(self.concepts, self.dependent)
                   if (concept is None or c == concept) and (d or not dependent_only))


@lru_cache(maxsize=1)
def split_test_rows() -> SplitRows:
    """The scored rows of the default test split of HumanEval + MBPP (see the module docstring)."""
    problems = [p for name in BENCHMARKS for p in load_problems(name)]
    split_settings = {"test_size": _default(BuildConfig, "test_size"), "seed": _default(BuildConfig, "seed")}
    # The split depends only on the set of tasks with rows: every task whose program parses (the unvalidated
    # engine drops only those that do not). So the test tasks are known before perturbing, and only they are.
    parsed = [p for p in problems if _parses(p.program)]
    test_tasks = {
        r["task_id"] for r in split_by_task([{"task_id": p.task_id} for p in parsed], **split_settings)["test"]
    }
    test_problems = [p for p in parsed if p.task_id in test_tasks]
    records = generate_counterfactuals(test_problems, GenerationConfig(validate=False, progress=False))
    rows = build_rows(records, load_tasks(BENCHMARKS), allow_unvalidated=True)
    _, variants = records_from_rows(rows)
    config = EvaluationConfig(model="simulated", output_dir="unused")
    scored, _ = cut_rows(variants, {p.task_id: p for p in problems}, config)
    return SplitRows(tuple(r.concept.value for r in scored), tuple(bool(r.dependent) for r in scored))


def _parses(program: str) -> bool:
    try:
        ast.parse(program)
    except (SyntaxError, ValueError):
        return False
    return True


def default_samples() -> int:
    """Completions per prompt of ``procure evaluate`` (its default ``n``)."""
    return _default(EvaluationConfig, "n")


def simulate_passes(
    rng: np.random.Generator, seeds: int, rows: int, n: int, p_reference: float, p_counterfactual: float
) -> tuple[np.ndarray, np.ndarray]:
    """Passing completions per (seed, row) on each side: ``(a, b)``, each ``(seeds, rows)``, from 0/1 outcome
    vectors of ``n`` completions per side."""
    reference = rng.random((seeds, rows, n)) < p_reference
    counterfactual = rng.random((seeds, rows, n)) < p_counterfactual
    return reference.sum(axis=2), counterfactual.sum(axis=2)


def gap_results(
    seed: int, seeds: int, rows: int, n: int, p_reference: float, p_counterfactual: float, *,
    n_bootstrap: int = 1000, confidence: float = 0.95, n_permutations: int = 0, bootstrap_seed: int = 0,
) -> list[dict]:
    """:func:`~procure_trl.metrics.ccs_gap.gap_summary` of ``seeds`` simulated evaluations of ``rows`` rows.

    Each simulated evaluation draws its own outcomes; all share the bootstrap resamples of ``bootstrap_seed``,
    as evaluations with the default ``--seed`` do (the resamples depend only on the seed and the row count).
    """
    rng = np.random.default_rng(seed)
    a, b = simulate_passes(rng, seeds, rows, n, p_reference, p_counterfactual)
    sizes = np.full(rows, n)
    weights = resample_counts(rows, n_bootstrap, bootstrap_seed).astype(float)  # cast once, not per evaluation
    return [
        gap_summary(a[s], sizes, b[s], sizes, weights, confidence, n_permutations, seed + s) for s in range(seeds)
    ]


def covers_zero(interval) -> bool:
    return interval is not None and interval[0] <= 0.0 <= interval[1]
