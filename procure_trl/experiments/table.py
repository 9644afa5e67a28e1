"""The experiment's table and plots: one row per (variant, seed) run with what it changed, its training loss, its
scores on the eval split and its state; ``experiment.md``, ``experiment.json``, ``scores.png`` and
``training_loss.png`` in the experiment's output folder."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from procure_trl.evaluation.compare_report import gap_cell, pass_gap_cell
from procure_trl.evaluation.report import format_value
from procure_trl.metrics.ccs import GAP_KEYS

if TYPE_CHECKING:
    from procure_trl.experiments.results import ExperimentResult

__all__ = ["experiment_rows", "experiment_markdown", "compare_experiment", "downstream_markdown",
           "write_experiment_report", "varying_fields"]


def varying_fields(result: ExperimentResult) -> list[str]:
    """The training fields whose value is not the same in every run (what the variants change), in the order the
    variants name them; the datasets too when variants train or evaluate on different ones. An untuned run trains
    with no setting at all: it is left out of the comparison, or every field would count as changed."""
    plans = [o.plan for o in result.outcomes]
    trained = [p for p in plans if not p.untuned] or plans
    names = list(dict.fromkeys(k for p in trained for k in p.settings))
    fields = [n for n in names if len({json.dumps(p.settings.get(n), default=str) for p in trained}) > 1]
    for role in ("train_dataset", "eval_dataset"):
        if len({getattr(p, role) for p in plans}) > 1:
            fields.append(role)
    return fields


def _setting(plan, name: str) -> Any:
    return getattr(plan, name) if name in ("train_dataset", "eval_dataset") else plan.settings.get(name)


def experiment_rows(result: ExperimentResult, fields: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per run: variant, seed, the settings named by ``fields`` (:func:`varying_fields`), state, training
    and evaluation numbers."""
    rows = []
    for outcome in result.outcomes:
        train = outcome.status.get("train") or {}
        evaluation = outcome.status.get("evaluate") or {}
        finished = evaluation.get("state") == "done"
        rows.append({
            "variant": outcome.plan.variant.name,
            "description": outcome.plan.variant.description,
            "seed": outcome.plan.seed,
            "settings": {name: _setting(outcome.plan, name) for name in fields},
            "state": outcome.state,
            "error": outcome.error,
            "train_loss": train.get("train_loss"),
            "train_seconds": train.get("seconds"),
            "steps": train.get("steps"),
            "history": train.get("history", []),
            "eval_seconds": evaluation.get("seconds") if finished else None,
            "pass_at_k": evaluation.get("pass_at_k", {}) if finished else {},
            "ccs": evaluation.get("ccs") if finished else None,
            "ccs_ci": evaluation.get("ccs_ci") if finished else None,
            "ccs_rows": evaluation.get("ccs_rows") if finished else None,
            **{key: evaluation.get(key) if finished else None for key in GAP_KEYS},
            "run_dir": outcome.plan.run_dir,
            "evaluation_dir": outcome.plan.evaluation_dir if finished else None,
            "downstream": {task: (outcome.status.get(f"evaluate_{task}") or {}).get("metrics")
                           for task in outcome.plan.downstream_tasks},
        })
    return rows


def downstream_markdown(result: ExperimentResult, rows: Sequence[dict[str, Any]]) -> str:
    """One table per downstream task of the experiment (``tasks``): each run's scores; ``""`` without any."""
    from procure_trl.evaluation.compare_downstream import DOWNSTREAM_TASKS

    lines: list[str] = []
    for task in (t for t in result.config.tasks if t in DOWNSTREAM_TASKS):
        scores = DOWNSTREAM_TASKS[task]
        lines += ["", f"## `--task {task}` on the `{result.config.eval_split}` split's mutant pairs", "",
                  "| variant | seed | pairs | " + " | ".join(scores) + " |", "|---|---|---|" + "---|" * len(scores)]
        for row in rows:
            metrics = row["downstream"].get(task) or {}
            lines.append("| " + " | ".join([row["variant"], str(row["seed"]), _cell(metrics.get("pairs")),
                                            *(_cell(metrics.get(s)) for s in scores)]) + " |")
    return "\n".join(lines) + ("\n" if lines else "")


def _cell(value: Any) -> str:
    return format_value(value) if not isinstance(value, str) else value


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def experiment_markdown(result: ExperimentResult, rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    """The table of runs (a column per setting in ``fields``), the variants' descriptions and the failures."""
    config = result.config
    ks = list(dict.fromkeys(k for row in rows for k in row["pass_at_k"])) or ["pass@1"]
    lines = [f"# Experiment: {config.name}", ""]
    if config.description:
        lines += [" ".join(config.description.split()), ""]
    lines += [
        f"Trained on the `{config.train_split}` split, evaluated on the `{config.eval_split}` split (held-out "
        "tasks). pass@k over the split's problems, CCS over its (problem, concept) rows; intervals from `procure "
        "compare` (bootstrap over the run's own problems and rows; the main table below pairs the seeds and clusters "
        "by task). CCS gap: CCS minus the CCS expected if each row's two sides were exchangeable (raw CCS follows "
        "the pass rate); pass gap: mean per-row pass rate, counterfactual minus reference, with the sign-flip "
        "test's p.",
        "",
        "| variant | seed | " + " | ".join(f"`{f}`" for f in fields) + " | train loss | train s | "
        + " | ".join(f"{k} [interval]" for k in ks)
        + " | CCS [interval] | CCS gap [interval] | pass gap [interval], p | CCS rows | eval s | state |",
        "|---|---|" + "---|" * len(fields) + "---|---|" + "---|" * len(ks) + "---|---|---|---|---|---|",
    ]
    for row in rows:
        ccs = "n/a" if row["ccs"] is None else f"{row['ccs']:.3f}" + (
            f" {format_value(row['ccs_ci'])}" if row["ccs_ci"] else "")
        cells = [row["variant"], str(row["seed"])]
        cells += [_cell(row["settings"][f]) for f in fields]
        cells += [_cell(row["train_loss"]), _seconds(row["train_seconds"])]
        intervals = row.get("pass_at_k_ci") or {}
        cells += [_cell(row["pass_at_k"].get(k)) + (f" {format_value(intervals[k])}" if intervals.get(k) else "")
                  for k in ks]
        cells += [ccs, gap_cell(row), pass_gap_cell(row)]
        cells += [_cell(row["ccs_rows"]), _seconds(row["eval_seconds"]), row["state"]]
        lines.append("| " + " | ".join(cells) + " |")
    described = [v for v in config.variants if v.description]
    if described:
        lines += ["", "Variants:", ""] + [f"- `{v.name}`: {' '.join(v.description.split())}" for v in described]
    failed = [row for row in rows if row["state"] == "failed"]
    if failed:
        lines += ["", f"## Failed runs ({len(failed)})", ""]
        lines += [f"- `{row['variant']}` seed {row['seed']}: {row['error']}" for row in failed]
    return "\n".join(lines) + "\n"


def _label(row: dict[str, Any], seeds: int) -> str:
    return row["variant"] if seeds == 1 else f"{row['variant']} seed {row['seed']}"


def compare_experiment(result: ExperimentResult, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``procure compare`` over the evaluated runs, one comparison per eval dataset (runs on different datasets
    share no task to pair); each row then takes its scores and intervals from the comparison.

    Returns:
        eval dataset name -> :class:`~procure_trl.evaluation.compare.Comparison` (datasets with under two
        evaluated runs have none; their rows keep the evaluation's own numbers).
    """
    from procure_trl.evaluation.compare import CompareConfig, compare_runs

    config = result.config
    groups: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for row, outcome in zip(rows, result.outcomes):
        if row["evaluation_dir"]:  # runs of one model on one dataset; the baseline's runs first
            key = "/".join(filter(None, [outcome.plan.model, outcome.plan.eval_dataset]))
            groups.setdefault(key, []).append((row, outcome.plan))
    several = len(groups) > 1
    comparisons = {}
    for name, members in groups.items():
        members.sort(key=lambda member: member[1].variant.name != config.baseline)
        if len(members) < 2:
            continue
        settings = members[0][1].evaluation  # the same bootstrap as the evaluations
        comparison = compare_runs(CompareConfig(
            runs=[row["evaluation_dir"] for row, _ in members],
            output_dir=os.path.join(config.output_dir, "comparison", *([name] if several else [])),
            labels=[_label(row, len(config.seeds)) for row, _ in members],
            **{key: settings[key] for key in ("confidence", "n_bootstrap") if key in settings},
        ))
        comparisons[name] = comparison
        by_dir = {summary["run_dir"]: summary for summary in comparison.runs}
        for row, _ in members:
            summary = by_dir[row["evaluation_dir"]]
            row["pass_at_k"] = {k: cell["value"] for k, cell in summary["pass_at_k"].items()}
            row["pass_at_k_ci"] = {k: cell["ci"] for k, cell in summary["pass_at_k"].items()}
            ccs = summary["ccs"] or {}
            row["ccs"], row["ccs_ci"], row["ccs_rows"] = ccs.get("value"), ccs.get("ci"), ccs.get("rows")
            row.update({key: ccs.get(key) for key in GAP_KEYS})
    return comparisons


def _strength_section(result: ExperimentResult, scored: Sequence[dict[str, Any]], files: dict[str, str]) -> str:
    """CCS against the number of changed sites (:mod:`procure_trl.experiments.strength`) when the runs hold
    several site counts; ``""`` otherwise."""
    from procure_trl.experiments.strength import write_strength

    settings = result.config.evaluation
    section, written = write_strength(
        [(_label(row, len(result.config.seeds)), row["evaluation_dir"]) for row in scored], result.config.output_dir,
        title=f"{result.config.name}: CCS against sites changed",
        **{key: settings[key] for key in ("confidence", "n_bootstrap") if key in settings})
    files.update(written)
    return "\n" + section if section else ""


def write_experiment_report(result: ExperimentResult) -> dict[str, str]:
    """Compare the runs and write ``experiment.md``, ``experiment.json`` and the plots into the output folder."""
    from procure_trl.experiments.paired import main_table, main_table_json, main_table_markdown
    from procure_trl.experiments.plots import plot_experiment_scores, plot_training_loss

    out = result.config.output_dir
    os.makedirs(out, exist_ok=True)
    fields = varying_fields(result)
    rows = experiment_rows(result, fields)
    comparisons = compare_experiment(result, rows)
    files = {"table": os.path.join(out, "experiment.md"), "report": os.path.join(out, "experiment.json")}
    scored = [row for row in rows if row["evaluation_dir"]]
    if scored:
        files["scores_plot"] = plot_experiment_scores(
            scored, os.path.join(out, "scores.png"), sweep=result.config.sweep,
            title=f"{result.config.name}: scores on the {result.config.eval_split} split")
    if any(row["history"] for row in rows):
        files["loss_plot"] = plot_training_loss(
            rows, os.path.join(out, "training_loss.png"), title=f"{result.config.name}: training loss")
    text = experiment_markdown(result, rows, fields)
    main = main_table(result, **{key: value for key, value in _bootstrap_settings(result).items()})
    text += "\n" + main_table_markdown(main)
    text += _strength_section(result, scored, files)
    text += downstream_markdown(result, rows)
    for name, comparison in comparisons.items():
        # procure compare's per-run figures; its paired differences (rows resampled, one seed pair) stay in
        # comparison.md: the main table's pairs are seed by seed with task-clustered intervals
        for key, path in comparison.files.items():
            files[f"comparison_{name}_{key}" if len(comparisons) > 1 else f"comparison_{key}"] = path
    with open(files["table"], "w", encoding="utf-8") as handle:
        handle.write(text)
    with open(files["report"], "w", encoding="utf-8") as handle:
        json.dump({"name": result.config.name, "output_dir": out, "varying": fields, "runs": rows,
                   "main_table": main_table_json(main), "files": files}, handle, indent=2, default=str)
    return files


def _bootstrap_settings(result: ExperimentResult) -> dict[str, Any]:
    """The evaluations' confidence and resamples, for the main table's intervals."""
    settings = {**result.config.evaluation}
    return {key: settings[key] for key in ("confidence", "n_bootstrap") if key in settings}
