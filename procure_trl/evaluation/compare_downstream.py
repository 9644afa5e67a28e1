"""``procure compare`` of ``--task repair`` or ``--task detect`` runs: each run's scores with bootstrap intervals over
mutant pairs, and every run's paired difference to the first over the pairs both scored.

The scores are recomputed from the per-pair results of each ``report.json`` (:mod:`procure_trl.evaluation.downstream`):

* **repair**: ``repair_pass@1`` (mean over pairs of the pass@1 of both contexts) and ``consistency`` (the CCS of
  the two contexts of a bug: :func:`~procure_trl.metrics.ccs.concept_consistency_score`; its paired difference is
  :func:`~procure_trl.evaluation.compare.paired_ccs_difference`);
* **detect**: ``accuracy`` (share of the four programs of a pair judged right) and ``consistency`` (share of the
  two (original version, counterfactual version) pairs judged alike).

A pair is keyed by task, concept, mutation, sites and variant (and its occurrence among equal keys), so two runs
are paired on the same bugs. Pure functions; the command writes what :func:`downstream_markdown` returns.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from procure_trl.errors import UserError
from procure_trl.metrics.bootstrap import mean_interval, paired_mean_difference
from procure_trl.metrics.pass_at_k import estimate_pass_at_k

__all__ = ["DOWNSTREAM_TASKS", "DownstreamRun", "downstream_difference", "downstream_markdown", "downstream_run",
           "downstream_summary"]

#: The tasks of :mod:`procure_trl.evaluation.downstream` and the scores compared for each.
DOWNSTREAM_TASKS = {"repair": ("repair_pass@1", "consistency"), "detect": ("accuracy", "consistency")}
#: What ``judged_buggy`` should say for the four programs of a detect pair (original, counterfactual, two mutants).
_TRUTH = (False, False, True, True)


@dataclass
class DownstreamRun:
    """The per-pair results of one downstream run.

    Attributes:
        run_dir / label / benchmark: as for a ``generate`` run.
        task: ``repair`` or ``detect``.
        pairs: key -> per-pair results: for repair ``(original-context passes, counterfactual-context passes)``, for
            detect ``(judged_buggy of the four programs,)``.
    """

    run_dir: str
    label: str
    benchmark: str
    task: str
    pairs: dict[tuple, tuple[list, ...]]


def downstream_run(run_dir: str, report: Mapping[str, Any], label: str) -> DownstreamRun:
    """The :class:`DownstreamRun` of a downstream ``report.json``.

    Raises:
        ValueError: a report without per-pair results.
    """
    task = report["task"]
    config = report.get("config", {})
    pairs: dict[tuple, tuple[list, ...]] = {}
    try:
        for item in report["pairs"]:
            base = (item["task_id"], item["concept"], item["mutation"], item.get("sites"), item.get("variant"))
            occurrence = sum(key[:-1] == base for key in pairs)
            values = ((list(item["original"]), list(item["counterfactual"])) if task == "repair"
                      else (list(item["judged_buggy"]),))
            key = (*base, occurrence)  # (mypy reads a starred tuple inside [] as Python 3.11 syntax)
            pairs[key] = values
    except (KeyError, TypeError) as err:
        raise UserError(f"{run_dir}/report.json lacks the per-pair results of --task {task} ({err}); re-run "
                         "`procure evaluate` with this version") from None
    source = config.get("dataset") or config.get("mutants") or config.get("benchmark") or "?"
    split = f" ({config['split']})" if config.get("dataset") and config.get("split") else ""
    return DownstreamRun(run_dir, label, f"{source}{split}", task, pairs)


def _per_pair(run: DownstreamRun, keys: Sequence[tuple], score: str) -> list[float]:
    """One value per pair whose mean over pairs is ``score`` (consistency of repair is a pooled ratio: not here)."""
    out = []
    for key in keys:
        values = run.pairs[key]
        if run.task == "repair":
            out.append(float(np.mean([estimate_pass_at_k(len(r), int(sum(r)), 1) for r in values])))
        elif score == "accuracy":
            out.append(float(np.mean([j == t for j, t in zip(values[0], _TRUTH)])))
        else:
            judged = values[0]
            out.append(((judged[0] == judged[1]) + (judged[2] == judged[3])) / 2)
    return out


def _repair_consistency(run: DownstreamRun, keys: Sequence[tuple], confidence: float, n_bootstrap: int,
                        seed: int) -> dict[str, Any]:
    from procure_trl.metrics.ccs import concept_consistency_score

    with warnings.catch_warnings():  # no pair repaired anywhere: undefined, shown as n/a
        warnings.simplefilter("ignore", RuntimeWarning)
        ccs = concept_consistency_score([run.pairs[k][1] for k in keys], [run.pairs[k][0] for k in keys],
                                        confidence=confidence, n_bootstrap=n_bootstrap, seed=seed)
    return {"value": ccs["ccs"], "ci": ccs["ccs_ci"]}


def _mean_with_interval(values: Sequence[float], confidence: float, n_bootstrap: int, seed: int) -> dict[str, Any]:
    if not values:
        return {"value": None, "ci": None}
    value, ci = mean_interval(values, confidence, n_bootstrap, seed)
    return {"value": value, "ci": ci}


def downstream_summary(run: DownstreamRun, confidence: float, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """The run's two scores of :data:`DOWNSTREAM_TASKS`, each with a percentile bootstrap interval over pairs."""
    keys = list(run.pairs)
    scores: dict[str, Any] = {}
    for score in DOWNSTREAM_TASKS[run.task]:
        if run.task == "repair" and score == "consistency":
            scores[score] = _repair_consistency(run, keys, confidence, n_bootstrap, seed)
        else:
            scores[score] = _mean_with_interval(_per_pair(run, keys, score), confidence, n_bootstrap, seed)
    return {"run_dir": run.run_dir, "label": run.label, "benchmark": run.benchmark, "task": run.task,
            "pairs": len(keys), "scores": scores}


def downstream_difference(baseline: DownstreamRun, other: DownstreamRun, confidence: float, n_bootstrap: int,
                          seed: int) -> dict[str, Any]:
    """``other`` minus ``baseline`` in each score, over the pairs both scored; each resample draws the same pairs
    for both runs."""
    from procure_trl.evaluation.compare import paired_ccs_difference

    keys = [key for key in baseline.pairs if key in other.pairs]
    out: dict[str, Any] = {"baseline": baseline.label, "other": other.label, "pairs": len(keys), "scores": {}}
    if not keys:
        return out
    for score in DOWNSTREAM_TASKS[baseline.task]:
        if baseline.task == "repair" and score == "consistency":
            rows = [[(list(run.pairs[k][0]), list(run.pairs[k][1])) for k in keys] for run in (baseline, other)]
            diff = paired_ccs_difference(rows[0], rows[1], confidence, n_bootstrap, seed)
            out["scores"][score] = {key: diff[key] for key in ("baseline", "other", "difference", "ci")}
            continue
        base, new = _per_pair(baseline, keys, score), _per_pair(other, keys, score)
        difference, ci = paired_mean_difference(base, new, confidence, n_bootstrap, seed)
        out["scores"][score] = {"baseline": float(np.mean(base)), "other": float(np.mean(new)),
                                "difference": difference, "ci": ci}
    return out


def downstream_markdown(task: str, runs: Sequence[Mapping[str, Any]], differences: Sequence[Mapping[str, Any]],
                        confidence: float, n_bootstrap: int, seed: int) -> str:
    """The tables of a downstream comparison: one row per run, then each run's paired difference to the first."""
    from procure_trl.evaluation.report import format_signed, format_value

    scores = DOWNSTREAM_TASKS[task]
    lines = [f"# Comparison of `--task {task}` runs", "",
             f"Intervals: {confidence:.0%} percentile bootstrap ({n_bootstrap} resamples, seed {seed}) over mutant "
             "pairs.", "",
             "| run (model + adapter) | evaluated on | pairs | " + " | ".join(scores) + " |",
             "|---|---|---|" + "---|" * len(scores)]
    for run in runs:
        cells = [f"`{run['label']}`", run["benchmark"], str(run["pairs"])]
        cells += [f"{format_value(run['scores'][s]['value'])} {format_value(run['scores'][s]['ci'])}".strip()
                  for s in scores]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"## Paired differences against `{runs[0]['label']}`", "",
              "Over the pairs both runs scored; each resample draws the same pairs for both runs.", "",
              "| other run | pairs | " + " | ".join(f"Δ {s} [interval]" for s in scores) + " |",
              "|---|---|" + "---|" * len(scores)]
    for diff in differences:
        cells = [f"`{diff['other']}`", str(diff["pairs"])]
        cells += [format_signed(cell.get("difference"), cell.get("ci"))
                  for cell in (diff["scores"].get(s) or {} for s in scores)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
