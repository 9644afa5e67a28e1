"""Evaluation runs side by side: pass@k and CCS with bootstrap intervals, and paired differences between runs.

Each run is the output folder of ``procure evaluate`` (its ``report.json``). The scores are recomputed from the
per-completion results stored there, with the package's estimators (:func:`~procure_trl.metrics.pass_at_k.pass_at_k`,
:func:`~procure_trl.metrics.ccs.concept_consistency_score`) and one bootstrap setting for every run, so the
intervals of different runs are comparable.

* **pass@k** of the benchmark prompts, with a percentile bootstrap interval over problems.
* **CCS**, overall and per concept, with a percentile bootstrap interval over rows (one row: a (problem, concept,
  variant): every scored counterfactual row is kept, see :class:`RowKey`),
  and beside it what separates consistency from accuracy (:mod:`procure_trl.metrics.ccs_gap`): ``ccs_expected``,
  ``ccs_gap`` with ``ccs_gap_ci``, and the paired pass-rate test ``pass_gap``, ``pass_gap_ci``, ``pass_gap_p``;
  the same over the *dependent* rows (whose text left to complete uses what the change touched) when the reports
  record it.
* **Paired differences**, every run against the first: over the problems (for pass@1) and the rows (for CCS and
  its gap) that both runs scored, each resample draws the same problems / rows for both runs, and the interval is
  that of the difference. Runs on different benchmarks share nothing: no difference is reported for them.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from procure_trl.errors import MissingInputError, UserError, first_line
from procure_trl.evaluation.report import run_label
from procure_trl.metrics.bootstrap import (
    mean_interval,
    paired_mean_difference,
    percentile_interval,
    pooled_ratio_samples,
    resample_counts,
)
from procure_trl.metrics.ccs import GAP_KEYS, concept_consistency_score
from procure_trl.metrics.ccs_gap import expected_pair_counts, pair_counts, pass_counts
from procure_trl.metrics.pass_at_k import estimate_pass_at_k, pass_at_k

__all__ = ["CompareConfig", "RunScores", "Comparison", "load_run", "compare_runs", "paired_difference", "read_report"]

class RowKey(NamedTuple):
    """Key of one scored counterfactual row. A (task, concept) can hold several rows (``procure perturb --variants N``
    or ``--sites K``, several site counts in one dataset): the variant number and the site count tell them apart, and
    ``occurrence`` numbers rows equal in all of these in report order, so no row is ever merged with another."""

    task_id: str
    concept: str
    sites: int | None = None
    variant: int | None = None
    occurrence: int = 0


def _row_keys(tasks: Sequence[dict[str, Any]]) -> list[tuple[RowKey, dict[str, Any]]]:
    """Every counterfactual row of a report's ``tasks`` with its :class:`RowKey`."""
    seen: dict[tuple, int] = {}
    out = []
    for task in tasks:
        for row in task.get("variants", []):
            base = (task["task_id"], row["concept"], row.get("sites", 1), row.get("variant"))  # reports before sites: 1
            seen[base] = seen.get(base, -1) + 1
            out.append((RowKey(*base, seen[base]), row))
    return out


@dataclass
class CompareConfig:
    r"""What ``procure compare`` compares and how.

    Parameters:
        runs (`list[str]`):
            Output folders of ``procure evaluate`` (each holds a ``report.json``); the first is the baseline of
            the paired differences.
        output_dir (`str`, defaults to `"outputs/comparison"`):
            Where ``comparison.md``, ``comparison.json`` and the plots go.
        k (`list[int]`, *optional*):
            The k of pass@k to report; `None`: every k that all runs can estimate (k <= their n).
        confidence (`float`, defaults to `0.95`):
            Coverage of every interval.
        n_bootstrap (`int`, defaults to `1000`):
            Bootstrap resamples per interval.
        seed (`int`, defaults to `0`):
            Seed of the resamples (the same seed gives the same intervals).
        labels (`list[str]`, *optional*):
            Names of the runs in tables and plots, one per run; `None`: model and adapter of each run.
    """

    runs: list[str] = field(metadata={"help": "output folders of procure evaluate; the first is the baseline",
                                      "positional": True, "metavar": "RUN_DIR"})
    output_dir: str = field(
        default="outputs/comparison", metadata={"help": "output directory (comparison.md, comparison.json, plots)"}
    )
    k: list[int] | None = field(default=None, metadata={"help": "k of pass@k (default: every k all runs allow)"})
    confidence: float = field(default=0.95, metadata={"help": "coverage of the bootstrap intervals"})
    n_bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples per interval"})
    seed: int = field(default=0, metadata={"help": "seed of the bootstrap resamples"})
    labels: list[str] | None = field(
        default=None, metadata={"help": "names of the runs in tables and plots, one per run (default: model + adapter)"}
    )

    def __post_init__(self) -> None:
        if len(self.runs) < 2:
            raise UserError(f"compare needs at least two runs, got {len(self.runs)}: pass two or more RUN_DIRs")
        if self.labels is not None and len(self.labels) != len(self.runs):
            raise UserError(f"labels: {len(self.labels)} given for {len(self.runs)} runs; give one label per run")
        if not 0.0 < self.confidence < 1.0:
            raise UserError(f"confidence={self.confidence} must lie strictly between 0 and 1 (e.g. 0.95)")
        if self.n_bootstrap < 1:
            raise UserError(f"n_bootstrap={self.n_bootstrap} must be >= 1")
        if self.k is not None and (not self.k or any(k < 1 for k in self.k)):
            raise UserError(f"k={self.k} must be one or more positive integers, e.g. 1,5")


@dataclass
class RunScores:
    """The per-completion results of one run, as read from its ``report.json``.

    Attributes:
        run_dir: the run's folder.
        label: model and adapter (see :func:`~procure_trl.evaluation.report.run_label`).
        benchmark: the benchmark (and split) the run was scored on.
        n: completions per prompt.
        ks: the k of pass@k the run reported.
        original: task id -> 0/1 result of each completion of the benchmark prompt.
        rows: :class:`RowKey` -> (reference results, counterfactual results), one entry per scored row.
        dependent: the rows whose text left to complete uses what the change touched; ``None`` when the report
            does not record it (written by an older version).
    """

    run_dir: str
    label: str
    benchmark: str
    n: int
    ks: list[int]
    original: dict[str, list[int]]
    rows: dict[RowKey, tuple[list[int], list[int]]]
    dependent: set[RowKey] | None = None

    def __post_init__(self) -> None:
        # a plain (task id, concept[, sites, variant]) tuple as key is read as the RowKey it abbreviates
        self.rows = {key if isinstance(key, RowKey) else RowKey(*key): value for key, value in self.rows.items()}
        if self.dependent is not None:
            self.dependent = {key if isinstance(key, RowKey) else RowKey(*key) for key in self.dependent}

    @property
    def concepts(self) -> list[str]:
        return list(dict.fromkeys(key.concept for key in self.rows))


@dataclass
class Comparison:
    """What :func:`compare_runs` measured; :meth:`to_dict` is ``comparison.json``."""

    config: CompareConfig
    ks: list[int]
    runs: list[dict[str, Any]]
    differences: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)
    #: ``generate``, or the downstream task of every run (:mod:`procure_trl.evaluation.compare_downstream`)
    task: str = "generate"

    def to_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "task": self.task, "ks": self.ks, "runs": self.runs,
                "differences": self.differences, "files": self.files}


def read_report(run_dir: str) -> dict[str, Any]:
    """The ``report.json`` of a ``procure evaluate`` output folder.

    Raises:
        FileNotFoundError: the folder holds none (the run did not finish, or it is another folder).
    """
    path = os.path.join(run_dir, "report.json")
    if not os.path.isfile(path):
        raise MissingInputError(
            f"{run_dir!r} holds no report.json: pass the --output-dir folder of a finished `procure evaluate` run"
        )
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except ValueError as err:  # a cut-off or edited file
            raise UserError(f"{path} is not valid JSON ({first_line(err)}); re-run `procure evaluate` into "
                            f"{run_dir!r}") from None


def load_run(run_dir: str) -> RunScores:
    """Read the results of one ``procure evaluate`` output folder.

    Raises:
        FileNotFoundError: no ``report.json`` in ``run_dir`` (the run did not finish, or it is another folder).
        ValueError: a ``report.json`` without per-completion results.
    """
    path = os.path.join(run_dir, "report.json")
    report = read_report(run_dir)
    try:
        config, tasks = report["config"], report["tasks"]
        original = {t["task_id"]: list(t["original"]["passed"]) for t in tasks}
        keyed = _row_keys(tasks)
        rows = {key: (list(v["reference"]["passed"]), list(v["counterfactual"]["passed"])) for key, v in keyed}
        flags = [(key, v.get("dependent")) for key, v in keyed]
    except (KeyError, TypeError) as err:
        raise UserError(
            f"{path} lacks the per-completion results ({err}); re-run `procure evaluate` with this version"
        ) from None
    benchmark = config["benchmark"] + (f" ({config['split']})" if config.get("split") else "")
    dependent = None if any(flag is None for _, flag in flags) else {key for key, flag in flags if flag}
    return RunScores(run_dir, run_label(config["model"], config.get("adapter")), benchmark, int(config["n"]),
                     [int(k) for k in config["k"]], original, rows, dependent)


# --------------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------------


def _pass_at_k_value(results: Sequence[Sequence[int]], k: int) -> float:
    return pass_at_k([len(r) for r in results], [int(sum(r)) for r in results], [k])[f"pass@{k}"]


def _per_problem(results: Sequence[Sequence[int]], k: int) -> list[float]:
    return [estimate_pass_at_k(len(r), int(sum(r)), k) for r in results]


def pass_at_k_with_interval(
    results: Sequence[Sequence[int]], k: int, confidence: float, n_bootstrap: int, seed: int
) -> dict[str, Any]:
    """pass@k over problems (``results[i]``: 0/1 of problem i's completions) and its bootstrap interval."""
    if not results:
        return {"value": None, "ci": None, "problems": 0}
    _, ci = mean_interval(_per_problem(results, k), confidence, n_bootstrap, seed)
    return {"value": _pass_at_k_value(results, k), "ci": ci, "problems": len(results)}


def _ccs(rows: dict[RowKey, tuple[list[int], list[int]]], config: CompareConfig) -> dict[str, Any] | None:
    if not rows:
        return None
    keys = list(rows)
    with warnings.catch_warnings():  # no valid pair: CCS is None, and the table says n/a
        warnings.simplefilter("ignore", RuntimeWarning)
        return concept_consistency_score(
            predictions=[rows[key][1] for key in keys],
            references=[rows[key][0] for key in keys],
            concepts=[key.concept for key in keys],
            confidence=config.confidence,
            n_bootstrap=config.n_bootstrap,
            seed=config.seed,
        )


def _scores(ccs: dict[str, Any], concept: str | None = None) -> dict[str, Any]:
    """``value``, ``ci`` and the :data:`GAP_KEYS` of a CCS metric output (of one concept when given)."""
    pick = (lambda key: ccs[f"{key}_per_concept"][concept]) if concept else (lambda key: ccs[key])
    return {"value": pick("ccs"), "ci": pick("ccs_ci"), **{key: pick(key) for key in GAP_KEYS}}


def run_summary(run: RunScores, ks: Sequence[int], config: CompareConfig) -> dict[str, Any]:
    """pass@k (benchmark prompts) and CCS with its gap statistics (overall, per concept, and over the dependent
    rows), with intervals."""
    original = list(run.original.values())
    ccs = _ccs(run.rows, config)
    dependent = None
    if run.dependent is not None:
        dependent = _ccs({key: value for key, value in run.rows.items() if key in run.dependent}, config)
    return {
        "run_dir": run.run_dir,
        "label": run.label,
        "benchmark": run.benchmark,
        "n": run.n,
        "pass_at_k": {
            f"pass@{k}": pass_at_k_with_interval(original, k, config.confidence, config.n_bootstrap, config.seed)
            for k in ks
        },
        "ccs": None if ccs is None else {**_scores(ccs), "rows": ccs["rows"], "valid_pairs": ccs["valid_pairs"],
                                         "ame": ccs["ame"]},
        "ccs_per_concept": {} if ccs is None else {
            concept: {**_scores(ccs, concept=concept), "rows": ccs["pairs_per_concept"][concept]["rows"]}
            for concept in ccs["ccs_per_concept"]
        },
        # None: the reports do not say which rows are dependent; rows 0: none is
        "ccs_dependent": None if run.dependent is None else (
            {"rows": 0} if dependent is None else {**_scores(dependent), "rows": dependent["rows"]}),
    }


# --------------------------------------------------------------------------------------------------
# two runs: paired differences
# --------------------------------------------------------------------------------------------------


def _ratio(consistent: Sequence[float] | np.ndarray, valid: Sequence[float] | np.ndarray) -> float | None:
    total = float(np.sum(valid))
    return float(np.sum(consistent)) / total if total > 0 else None


def _row_arrays(rows: Sequence[tuple[list[int], list[int]]]) -> tuple[np.ndarray, ...]:
    """Per row: observed consistent and valid pairs, then their expectations under exchangeable sides."""
    (a, n), (b, m) = pass_counts([r for r, _ in rows]), pass_counts([c for _, c in rows])
    return (*pair_counts(a, n, b, m), *expected_pair_counts(a, n, b, m))


def _gap(consistent, valid, expected_consistent, expected_valid) -> float | None:
    observed, expected = _ratio(consistent, valid), _ratio(expected_consistent, expected_valid)
    return None if observed is None or expected is None else observed - expected


def paired_ccs_difference(
    baseline: Sequence[tuple[list[int], list[int]]],
    other: Sequence[tuple[list[int], list[int]]],
    confidence: float,
    n_bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """CCS(other) - CCS(baseline) over the same rows (row i of both is the same :class:`RowKey`), and the same
    for the gap to the CCS expected by chance (``gap_difference``), each with the interval of a paired bootstrap:
    each resample draws the same rows for both runs."""
    base_rows, other_rows = _row_arrays(baseline), _row_arrays(other)
    base, new = _ratio(*base_rows[:2]), _ratio(*other_rows[:2])
    base_gap, new_gap = _gap(*base_rows), _gap(*other_rows)
    result: dict[str, Any] = {
        "rows": len(baseline), "baseline": base, "other": new,
        "difference": None if base is None or new is None else new - base, "ci": None,
        "baseline_gap": base_gap, "other_gap": new_gap,
        "gap_difference": None if base_gap is None or new_gap is None else new_gap - base_gap, "gap_ci": None,
    }
    if result["difference"] is not None:
        weights = resample_counts(len(baseline), n_bootstrap, seed)

        def resampled(arrays, offset):  # the pooled ratio of columns offset, offset + 1 in every resample
            return pooled_ratio_samples(arrays[offset], arrays[offset + 1], weights)

        diff = resampled(other_rows, 0) - resampled(base_rows, 0)
        result["ci"] = percentile_interval(diff, confidence)  # resamples where either CCS is undefined drop out
        gap_diff = diff - (resampled(other_rows, 2) - resampled(base_rows, 2))
        result["gap_ci"] = percentile_interval(gap_diff, confidence)
    return result


def paired_pass_at_k_difference(
    baseline: Sequence[Sequence[int]], other: Sequence[Sequence[int]], k: int, confidence: float, n_bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """pass@k(other) - pass@k(baseline) over the same problems, with a paired bootstrap interval."""
    base, new = _pass_at_k_value(baseline, k), _pass_at_k_value(other, k)
    _, ci = paired_mean_difference(_per_problem(baseline, k), _per_problem(other, k), confidence, n_bootstrap, seed)
    return {"problems": len(baseline), "baseline": base, "other": new, "difference": new - base, "ci": ci}


def paired_difference(baseline: RunScores, other: RunScores, config: CompareConfig) -> dict[str, Any]:
    """``other`` minus ``baseline`` in pass@1, CCS and its gap (overall, per concept, and over the rows both
    reports mark dependent), over what both runs scored."""
    out: dict[str, Any] = {"baseline": baseline.label, "other": other.label, "pass@1": None, "ccs": None,
                           "ccs_per_concept": {}, "ccs_dependent": None}
    tasks = [t for t in baseline.original if t in other.original]
    if tasks:
        out["pass@1"] = paired_pass_at_k_difference(
            [baseline.original[t] for t in tasks], [other.original[t] for t in tasks], 1,
            config.confidence, config.n_bootstrap, config.seed,
        )
    keys = [key for key in baseline.rows if key in other.rows]
    if keys:
        out["ccs"] = paired_ccs_difference([baseline.rows[key] for key in keys], [other.rows[key] for key in keys],
                                           config.confidence, config.n_bootstrap, config.seed)
        for offset, concept in enumerate(dict.fromkeys(key.concept for key in keys)):
            mine = [key for key in keys if key.concept == concept]
            out["ccs_per_concept"][concept] = paired_ccs_difference(
                [baseline.rows[key] for key in mine], [other.rows[key] for key in mine],
                config.confidence, config.n_bootstrap, config.seed + 1 + offset,
            )
        if baseline.dependent is not None and other.dependent is not None:
            mine = [key for key in keys if key in baseline.dependent and key in other.dependent]
            if mine:
                out["ccs_dependent"] = paired_ccs_difference(
                    [baseline.rows[key] for key in mine], [other.rows[key] for key in mine],
                    config.confidence, config.n_bootstrap, config.seed,
                )
    return out


# --------------------------------------------------------------------------------------------------
# everything
# --------------------------------------------------------------------------------------------------


def _unique_labels(runs: list[RunScores]) -> None:
    """Two runs of one model and adapter (other settings) get their folder name added, so tables tell them apart."""
    labels = [run.label for run in runs]
    for run in runs:
        if labels.count(run.label) > 1:
            run.label = f"{run.label} ({os.path.basename(os.path.normpath(run.run_dir))})"


def _common_ks(runs: Sequence[RunScores], requested: Sequence[int] | None) -> list[int]:
    smallest_n = min(run.n for run in runs)
    if requested is None:  # the k every run reported
        return [k for k in runs[0].ks if all(k in run.ks for run in runs)] or [1]
    too_big = [k for k in requested if k > smallest_n]
    if too_big:
        raise UserError(f"k={too_big} exceeds the completions per prompt of some run (n={smallest_n}); "
                         f"pass k <= {smallest_n}")
    return list(requested)


def compare_runs(config: CompareConfig) -> Comparison:
    """Compare the runs of ``config`` and write ``comparison.md``, ``comparison.json`` and the plots."""
    from procure_trl.evaluation.compare_report import write_comparison

    tasks = {run_dir: read_report(run_dir).get("task", "generate") for run_dir in config.runs}
    if len(set(tasks.values())) > 1:
        named = ", ".join(f"{run_dir}: {task}" for run_dir, task in tasks.items())
        raise UserError(f"the runs are of different --task values ({named}); compare runs of one task")
    task = next(iter(tasks.values()))
    if task != "generate":
        comparison = _compare_downstream(config, task)
        write_comparison(comparison)
        return comparison
    runs = [load_run(run_dir) for run_dir in config.runs]
    for run, label in zip(runs, config.labels or ()):
        run.label = label
    _unique_labels(runs)
    ks = _common_ks(runs, config.k)
    summaries = [run_summary(run, ks, config) for run in runs]
    differences = [paired_difference(runs[0], run, config) for run in runs[1:]]
    comparison = Comparison(config, ks, summaries, differences)
    write_comparison(comparison)
    return comparison


def _compare_downstream(config: CompareConfig, task: str) -> Comparison:
    """The :class:`Comparison` of ``--task repair`` or ``--task detect`` runs (:mod:`.compare_downstream`)."""
    from procure_trl.evaluation.compare_downstream import downstream_difference, downstream_run, downstream_summary

    reports = [read_report(run_dir) for run_dir in config.runs]
    scores = [RunScores(run_dir, run_label(r["config"]["model"], r["config"].get("adapter")), "", 0, [], {}, {})
              for run_dir, r in zip(config.runs, reports)]
    for run, label in zip(scores, config.labels or ()):
        run.label = label
    _unique_labels(scores)
    runs = [downstream_run(run_dir, report, run.label) for run_dir, report, run in zip(config.runs, reports, scores)]
    settings = (config.confidence, config.n_bootstrap, config.seed)
    summaries = [downstream_summary(run, *settings) for run in runs]
    differences = [downstream_difference(runs[0], run, *settings) for run in runs[1:]]
    return Comparison(config, [], summaries, differences, task=task)
