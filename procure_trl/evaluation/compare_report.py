"""Writing a :class:`~procure_trl.evaluation.compare.Comparison`: ``comparison.md``, ``comparison.json`` and plots."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from procure_trl.evaluation.plots import plot_paired_differences, plot_runs_grouped
from procure_trl.evaluation.report import format_p, format_signed, format_value

if TYPE_CHECKING:
    from procure_trl.evaluation.compare import Comparison

__all__ = ["comparison_markdown", "gap_cell", "pass_gap_cell", "write_comparison"]


def _with_ci(cell: dict[str, Any] | None, signed: bool = False) -> str:
    if not cell:
        return "n/a"
    value = cell.get("difference" if signed else "value")
    if value is None:
        return "n/a"
    ci = cell.get("ci")
    text = f"{value:+.3f}" if signed else format_value(value)
    return text + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed and ci else f" {format_value(ci)}" if ci else "")


def gap_cell(cell: dict[str, Any] | None) -> str:
    """The CCS gap of a run (or a concept of it) with its interval."""
    return format_signed(cell.get("ccs_gap"), cell.get("ccs_gap_ci")) if cell else "n/a"


def pass_gap_cell(cell: dict[str, Any] | None) -> str:
    """The paired pass-rate gap with its interval and sign-flip p-value."""
    if not cell or cell.get("pass_gap") is None:
        return "n/a"
    return f"{format_signed(cell['pass_gap'], cell.get('pass_gap_ci'))}, p {format_p(cell.get('pass_gap_p'))}"


def _gap_difference(cell: dict[str, Any] | None) -> str:
    return format_signed(cell.get("gap_difference"), cell.get("gap_ci")) if cell else "n/a"


def _dependent_rows(run: dict[str, Any]) -> str:
    dependent = run.get("ccs_dependent")
    return "n/a" if dependent is None else f"{dependent['rows']} of {(run['ccs'] or {}).get('rows', 0)}"


def _concepts(comparison: Comparison) -> list[str]:
    return list(dict.fromkeys(c for run in comparison.runs for c in run["ccs_per_concept"]))


def comparison_markdown(comparison: Comparison) -> str:
    """The tables: one row per run (pass@k, CCS, CCS per concept), then each run's paired difference to the first
    (for runs of a downstream task: :func:`~procure_trl.evaluation.compare_downstream.downstream_markdown`)."""
    config = comparison.config
    if comparison.task != "generate":
        from procure_trl.evaluation.compare_downstream import downstream_markdown

        return downstream_markdown(comparison.task, comparison.runs, comparison.differences, config.confidence,
                                   config.n_bootstrap, config.seed)
    concepts = _concepts(comparison)
    keys = [f"pass@{k}" for k in comparison.ks]
    lines = [
        "# Comparison of evaluation runs",
        "",
        f"Intervals: {config.confidence:.0%} percentile bootstrap ({config.n_bootstrap} resamples, seed {config.seed}),"
        " over problems for pass@k and over (problem, concept) rows for CCS.",
        "",
        "| run (model + adapter) | benchmark | n | " + " | ".join(keys) + " | CCS | rows | "
        + " | ".join(f"CCS {c}" for c in concepts) + " | CCS gap | pass gap | dependent rows | CCS dependent "
        "| CCS gap dependent |",
        "|---|---|---|" + "---|" * len(keys) + "---|---|" + "---|" * len(concepts) + "---|---|---|---|---|",
    ]
    for run in comparison.runs:
        cells = [f"`{run['label']}`", run["benchmark"], str(run["n"])]
        cells += [_with_ci(run["pass_at_k"][key]) for key in keys]
        cells += [_with_ci(run["ccs"]), str((run["ccs"] or {}).get("rows", 0))]
        cells += [_with_ci(run["ccs_per_concept"].get(c)) for c in concepts]
        dependent = run.get("ccs_dependent")
        cells += [gap_cell(run["ccs"]), pass_gap_cell(run["ccs"]), _dependent_rows(run), _with_ci(dependent),
                  gap_cell(dependent)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "CCS gap: CCS minus the CCS expected if each row's two sides were exchangeable (about 0 for a "
              "model whose answers do not depend on the concept, whatever its pass rate). Pass gap: mean per-row "
              "pass rate, counterfactual minus reference, with the sign-flip test's p. Dependent rows: those whose "
              "text left to complete uses what the change touched (cite these).", ""]
    if concepts:
        lines += ["| run | " + " | ".join(f"{c}: CCS gap; pass gap" for c in concepts) + " |",
                  "|---|" + "---|" * len(concepts)]
        for run in comparison.runs:
            cells = [f"`{run['label']}`"]
            cells += [f"{gap_cell(run['ccs_per_concept'].get(c))}; {pass_gap_cell(run['ccs_per_concept'].get(c))}"
                      for c in concepts]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"## Paired differences against `{comparison.runs[0]['label']}`", "",
              "Over the problems (pass@1) and rows (CCS) both runs scored; each resample draws the same ones for "
              "both runs. An interval that excludes 0 is a difference the resampling does not explain.", "",
              "| other run | problems | Δ pass@1 [interval] | rows | Δ CCS [interval] | "
              + " | ".join(f"Δ CCS {c}" for c in concepts) + " | Δ CCS gap [interval] | dependent rows "
              "| Δ CCS dependent | Δ CCS gap dependent |",
              "|---|---|---|---|---|" + "---|" * len(concepts) + "---|---|---|---|"]
    for diff in comparison.differences:
        cells = [f"`{diff['other']}`", str((diff["pass@1"] or {}).get("problems", 0)), _with_ci(diff["pass@1"], True),
                 str((diff["ccs"] or {}).get("rows", 0)), _with_ci(diff["ccs"], True)]
        cells += [_with_ci(diff["ccs_per_concept"].get(c), True) for c in concepts]
        dependent = diff.get("ccs_dependent")
        cells += [_gap_difference(diff["ccs"]), str((dependent or {}).get("rows", 0)), _with_ci(dependent, True),
                  _gap_difference(dependent)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "A Δ CCS that comes with a Δ CCS gap near 0 is explained by the pass rate, not by consistency."]
    if any(d["pass@1"] is None and d["ccs"] is None for d in comparison.differences):
        lines += ["", "n/a: the two runs share no problem (another benchmark or split): nothing to pair."]
    return "\n".join(lines) + "\n"


def _title(prefix: str, labels: Sequence[str]) -> str:
    return "\n".join(textwrap.wrap(f"{prefix}: " + " vs ".join(labels), 110))


def write_comparison(comparison: Comparison) -> dict[str, str]:
    """Write ``comparison.md``, ``comparison.json`` and the PNG plots into ``comparison.config.output_dir``."""
    output_dir = comparison.config.output_dir
    os.makedirs(output_dir, exist_ok=True)
    files = comparison.files
    labels = [run["label"] for run in comparison.runs]
    confidence = f"{comparison.config.confidence:.0%} intervals"
    if comparison.task != "generate":
        return _write_downstream(comparison, confidence)
    keys = [f"pass@{k}" for k in comparison.ks]
    files["pass_at_k_plot"] = plot_runs_grouped(
        keys, [{"label": run["label"], "cells": run["pass_at_k"]} for run in comparison.runs],
        os.path.join(output_dir, "pass_at_k.png"), title=_title(f"pass@k, benchmark prompts ({confidence})", labels),
        ylabel="pass@k",
    )
    concepts = _concepts(comparison)
    if concepts:
        files["ccs_plot"] = plot_runs_grouped(
            ["all", *concepts],
            [{"label": run["label"], "cells": {"all": run["ccs"], **run["ccs_per_concept"]}}
             for run in comparison.runs],
            os.path.join(output_dir, "ccs_per_concept.png"),
            title=_title(f"CCS per concept ({confidence})", labels), ylabel="Concept Consistency Score",
        )
    for index, diff in enumerate(comparison.differences, start=1):
        names = ["pass@1", "CCS (all)", *(f"CCS {c}" for c in diff["ccs_per_concept"])]
        files[f"difference_plot_{index}"] = plot_paired_differences(
            names, [diff["pass@1"], diff["ccs"], *diff["ccs_per_concept"].values()],
            os.path.join(output_dir, f"difference_{index}.png"),
            title=_title(f"paired difference ({confidence})", [diff["baseline"], diff["other"]]),
        )
    return _write_tables(comparison)


def _write_downstream(comparison: Comparison, confidence: str) -> dict[str, str]:
    """The plot of each run's downstream scores, and the tables."""
    from procure_trl.evaluation.compare_downstream import DOWNSTREAM_TASKS

    labels = [run["label"] for run in comparison.runs]
    comparison.files["scores_plot"] = plot_runs_grouped(
        list(DOWNSTREAM_TASKS[comparison.task]),
        [{"label": run["label"], "cells": run["scores"]} for run in comparison.runs],
        os.path.join(comparison.config.output_dir, f"{comparison.task}.png"),
        title=_title(f"--task {comparison.task} ({confidence})", labels), ylabel="score")
    return _write_tables(comparison)


def _write_tables(comparison: Comparison) -> dict[str, str]:
    files, output_dir = comparison.files, comparison.config.output_dir
    files["summary"] = os.path.join(output_dir, "comparison.md")
    files["report"] = os.path.join(output_dir, "comparison.json")
    with open(files["summary"], "w", encoding="utf-8") as handle:
        handle.write(comparison_markdown(comparison))
    with open(files["report"], "w", encoding="utf-8") as handle:
        json.dump(comparison.to_dict(), handle, indent=2)
    return files
