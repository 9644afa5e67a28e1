"""The experiment's table and plots: one row per (variant, seed) run with what it changed, its training loss, its
scores on the eval split and its state; ``experiment.md``, ``experiment.json``, ``scores.png`` and
``training_loss.png`` in the experiment's output folder."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from procure_trl.harness.report import format_value

if TYPE_CHECKING:
    from procure_trl.experiments.runner import ExperimentResult

__all__ = ["experiment_rows", "experiment_markdown", "write_experiment_report", "varying_fields"]


def varying_fields(result: "ExperimentResult") -> list[str]:
    """The training fields whose value is not the same in every run (what the variants change), in the order the
    variants name them; the datasets too when variants train or evaluate on different ones."""
    plans = [o.plan for o in result.outcomes]
    names = list(dict.fromkeys(k for p in plans for k in p.variant.training))
    if result.config.sweep and result.config.sweep not in names:
        names.insert(0, result.config.sweep)
    fields = [n for n in names if len({json.dumps(p.training.get(n), default=str) for p in plans}) > 1]
    for role in ("train_dataset", "eval_dataset"):
        if len({getattr(p, role) for p in plans}) > 1:
            fields.append(role)
    return fields


def _setting(plan, name: str) -> Any:
    return getattr(plan, name) if name in ("train_dataset", "eval_dataset") else plan.training.get(name)


def experiment_rows(result: "ExperimentResult") -> list[dict[str, Any]]:
    """One dict per run: variant, seed, the varying settings, state, training and evaluation numbers."""
    fields = varying_fields(result)
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
            "run_dir": outcome.plan.run_dir,
            "evaluation_dir": outcome.plan.evaluation_dir if finished else None,
        })
    return rows


def _cell(value: Any) -> str:
    return format_value(value) if not isinstance(value, str) else value


def experiment_markdown(result: "ExperimentResult", rows: Sequence[dict[str, Any]]) -> str:
    """The table of runs, the variants' descriptions and the failures."""
    config = result.config
    fields = varying_fields(result)
    ks = list(dict.fromkeys(k for row in rows for k in row["pass_at_k"])) or ["pass@1"]
    lines = [f"# Experiment: {config.name}", ""]
    if config.description:
        lines += [" ".join(config.description.split()), ""]
    lines += [
        f"Trained on the `{config.train_split}` split, evaluated on the `{config.eval_split}` split (held-out "
        "tasks). pass@k over the split's problems; CCS with its bootstrap interval over (problem, concept) rows.",
        "",
        "| variant | seed | " + " | ".join(f"`{f}`" for f in fields) + " | train loss | train s | "
        + " | ".join(ks) + " | CCS [interval] | CCS rows | eval s | state |",
        "|---|---|" + "---|" * len(fields) + "---|---|" + "---|" * len(ks) + "---|---|---|---|",
    ]
    for row in rows:
        ccs = "n/a" if row["ccs"] is None else f"{row['ccs']:.3f}" + (
            f" {format_value(row['ccs_ci'])}" if row["ccs_ci"] else "")
        cells = [row["variant"], str(row["seed"])]
        cells += [_cell(row["settings"][f]) for f in fields]
        cells += [_cell(row["train_loss"]), _cell(row["train_seconds"])]
        cells += [_cell(row["pass_at_k"].get(k)) for k in ks]
        cells += [ccs, _cell(row["ccs_rows"]), _cell(row["eval_seconds"]), row["state"]]
        lines.append("| " + " | ".join(cells) + " |")
    described = [v for v in config.variants if v.description]
    if described:
        lines += ["", "Variants:", ""] + [f"- `{v.name}`: {' '.join(v.description.split())}" for v in described]
    failed = [row for row in rows if row["state"] == "failed"]
    if failed:
        lines += ["", f"## Failed runs ({len(failed)})", ""]
        lines += [f"- `{row['variant']}` seed {row['seed']}: {row['error']}" for row in failed]
    return "\n".join(lines) + "\n"


def write_experiment_report(result: "ExperimentResult") -> dict[str, str]:
    """Write ``experiment.md``, ``experiment.json`` and the plots into the experiment's output folder."""
    from procure_trl.experiments.plots import plot_experiment_scores, plot_training_loss

    out = result.config.output_dir
    os.makedirs(out, exist_ok=True)
    rows = experiment_rows(result)
    files = {"table": os.path.join(out, "experiment.md"), "report": os.path.join(out, "experiment.json")}
    scored = [row for row in rows if row["evaluation_dir"]]
    if scored:
        files["scores_plot"] = plot_experiment_scores(
            scored, os.path.join(out, "scores.png"), sweep=result.config.sweep,
            title=f"{result.config.name}: scores on the {result.config.eval_split} split")
    if any(row["history"] for row in rows):
        files["loss_plot"] = plot_training_loss(
            rows, os.path.join(out, "training_loss.png"), title=f"{result.config.name}: training loss")
    with open(files["table"], "w", encoding="utf-8") as handle:
        handle.write(experiment_markdown(result, rows))
    with open(files["report"], "w", encoding="utf-8") as handle:
        json.dump({"name": result.config.name, "output_dir": out, "varying": varying_fields(result), "runs": rows,
                   "files": files}, handle, indent=2, default=str)
    return files
