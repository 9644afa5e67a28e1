"""Writing an :class:`~procure_trl.evaluation.run.EvaluationReport`: ``report.json``, ``summary.md`` and plots."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from procure_trl.evaluation.plots import plot_ccs_by_sites, plot_ccs_per_concept, plot_pass_at_k
from procure_trl.evaluation.prompts import SKIP_REASONS

if TYPE_CHECKING:
    from procure_trl.evaluation.results import EvaluationReport

__all__ = ["write_report", "markdown_summary", "run_label", "format_value", "format_signed", "format_p", "gap_sentence"]


def run_label(model: str, adapter: str | None = None) -> str:
    """What names a run in titles and tables: the model as given, and the adapter when there is one.

    Paths are kept whole (two adapters are often both called ``final`` in different folders).
    """
    return f"{model} + adapter {adapter}" if adapter else model


def format_value(value: Any) -> str:
    """A score for a table: 3 decimals, an interval as ``[low, high]``, ``n/a`` for ``None``."""
    if value is None:
        return "n/a"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def format_signed(value: float | None, interval: Any = None) -> str:
    """A difference with its sign and, when given, its interval: ``-0.031 [-0.052, -0.010]``; ``n/a`` for ``None``."""
    if value is None:
        return "n/a"
    text = f"{value:+.3f}"
    return text + (f" [{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else "")


def format_p(value: float | None) -> str:
    """A p-value: 2 significant digits (``0.0001`` stays visible), ``n/a`` for ``None``."""
    return "n/a" if value is None else f"{value:.2g}"


def gap_sentence(scores: dict[str, Any], confidence: float) -> str:
    """One sentence: the CCS expected by chance, the gap to it, and the paired pass-rate test of a set of rows
    (``scores``: a CCS metric output or a per-concept row holding the same keys)."""
    return (
        f"CCS expected if the two sides were exchangeable {format_value(scores.get('ccs_expected'))}, "
        f"**gap {format_signed(scores.get('ccs_gap'), scores.get('ccs_gap_ci'))}**; paired pass-rate gap "
        f"(counterfactual − reference) {format_signed(scores.get('pass_gap'), scores.get('pass_gap_ci'))}, "
        f"sign-flip p = {format_p(scores.get('pass_gap_p'))} ({confidence:.0%} intervals)."
    )


def _consistency_lines(report: EvaluationReport) -> list[str]:
    """What separates consistency from accuracy: overall, on the dependent rows, and per concept."""
    ccs, dependent = report.ccs or {}, report.ccs_dependent or {}
    lines = ["", "Consistency beyond chance, all rows: " + gap_sentence(ccs, report.config.confidence)]
    rows = sum(row["dependent_rows"] for row in report.per_concept)
    lines += ["", f"Dependent rows (the text left to complete uses what the change touched; cite these): {rows} of "
              f"{ccs.get('rows', 0)} rows, **CCS {format_value(dependent.get('ccs'))}** "
              f"{format_value(dependent.get('ccs_ci'))}; " + gap_sentence(dependent, report.config.confidence)]
    if report.config.n == 1:
        lines += ["", "With one completion per prompt the gap is 0 by construction (a shuffle of one outcome per "
                  "side changes no pair): read the paired pass-rate test."]
    lines += [
        "",
        "| concept | rows | dependent | remainder differs | CCS | expected | gap [interval] | pass gap [interval] | p "
        "| CCS dependent | gap dependent [interval] | pass gap dependent | p dependent |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report.per_concept:
        dep = row["dependent"]
        cells = [row["concept"], row["rows"], row["dependent_rows"], row["remainder_differs_rows"],
                 format_value(row["ccs"]), format_value(row["ccs_expected"]),
                 format_signed(row["ccs_gap"], row["ccs_gap_ci"]), format_signed(row["pass_gap"], row["pass_gap_ci"]),
                 format_p(row["pass_gap_p"]), format_value(dep["ccs"]),
                 format_signed(dep["ccs_gap"], dep["ccs_gap_ci"]), format_signed(dep["pass_gap"], dep["pass_gap_ci"]),
                 format_p(dep["pass_gap_p"])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Gap: CCS minus the CCS expected by chance (about 0 for a model whose answers do not depend on "
              "the concept, whatever its pass rate; raw CCS follows the pass rate). Pass gap: mean per-row pass rate, "
              "counterfactual minus reference. See docs/evaluation.md."]
    return lines


def markdown_summary(report: EvaluationReport) -> str:
    """A short Markdown page: pass@k on the originals, then one line per concept."""
    config = report.config
    ks = [f"pass@{k}" for k in config.k]
    lines = [
        f"# Evaluation of `{run_label(config.model, config.adapter)}`",
        "",
        f"Scored on {config.evaluated_on}: {len(report.tasks)} problems, n={config.n} samples per prompt, "
        f"temperature {config.temperature}, top_p {config.top_p}.",
        "",
        "| prompts | " + " | ".join(ks) + " |",
        "|---|" + "---|" * len(ks),
        "| original (benchmark prompt) | "
        + " | ".join(format_value(report.pass_at_k["original"].get(k)) for k in ks) + " |",
    ]
    if report.per_concept:
        ccs = report.ccs or {}
        lines += [
            "",
            f"**CCS {format_value(ccs.get('ccs'))}** "
            f"(interval {format_value(ccs.get('ccs_ci'))} at {config.confidence:.0%}), "
            f"AME {format_value(ccs.get('ame'))}, {ccs.get('valid_pairs', 0)} valid pairs "
            f"over {ccs.get('rows', 0)} rows.",
            "",
            "| concept | rows given | scored | skipped | CCS | interval | AME | "
            + " | ".join(f"{k} original (cut) | {k} counterfactual" for k in ks)
            + " |",
            "|---|---|---|---|---|---|---|" + "---|---|" * len(ks),
        ]
        for row in report.per_concept:
            cells = [row["concept"], row["rows_given"], row["rows"], row["skipped"]]
            cells += [format_value(row["ccs"]), format_value(row["ccs_ci"]), format_value(row["ame"])]
            for k in ks:
                cells += [
                    format_value(row["pass_at_k_reference"].get(k)),
                    format_value(row["pass_at_k_counterfactual"].get(k))
                ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines += [
            "",
            "Original (cut): the original program cut like its counterfactual; CCS pairs its completions with the "
            "counterfactual's. See report.json `definitions`.",
        ]
        lines += _consistency_lines(report)
        if len({row["sites"] for row in report.per_sites}) > 1:
            lines += ["", "CCS by site count (places the counterfactual changed):", "",
                      "| concept | sites | rows | CCS | interval |", "|---|---|---|---|---|"]
            lines += [f"| {row['concept']} | {row['sites']} | {row['rows']} | {format_value(row['ccs'])} "
                      f"| {format_value(row['ccs_ci'])} |" for row in report.per_sites]
    timeouts = report.timeouts or {}
    n_timeouts = timeouts.get("original", 0) + sum(timeouts.get("reference", {}).values()) + sum(
        timeouts.get("counterfactual", {}).values()
    )
    if n_timeouts:
        lines += ["", f"{n_timeouts} completion(s) timed out after {config.timeout} s (counted as failures); "
                  "per group in report.json `timeouts`."]
    if report.skipped:
        lines += ["", f"{len(report.skipped)} counterfactual row(s) not scored (prompts that would not test the "
                  "concept), by reason:", "", "| concept | reason | rows |", "|---|---|---|"]
        for row in report.per_concept:
            for reason, count in row["skipped_by_reason"].items():
                lines.append(f"| {row['concept']} | {reason}: {SKIP_REASONS[reason]} | {count} |")
        lines += ["", "Each row's reason in words: report.json `skipped`."]
    return "\n".join(lines) + "\n"


def write_report(report: EvaluationReport, output_dir: str) -> dict[str, str]:
    """Write ``report.json``, ``summary.md`` and the PNG plots into ``output_dir``; return their paths."""
    os.makedirs(output_dir, exist_ok=True)
    files = report.files
    if report.per_concept:
        # Model and adapter both: a base model and its fine-tuned adapter must not get the same title.
        name = run_label(report.config.model, report.config.adapter)
        files["ccs_plot"] = plot_ccs_per_concept(
            report.per_concept,
            os.path.join(output_dir, "ccs_per_concept.png"),
            title=f"{name} on {report.config.evaluated_on}: CCS per concept ({report.config.confidence:.0%} interval)",
        )
        if len({row["sites"] for row in report.per_sites}) > 1:
            files["ccs_sites_plot"] = plot_ccs_by_sites(
                report.per_sites, os.path.join(output_dir, "ccs_by_sites.png"),
                title=f"{name} on {report.config.benchmark}: CCS by site count",
            )
        files["pass_at_k_plot"] = plot_pass_at_k(
            report.pass_at_k,
            report.config.k,
            os.path.join(output_dir, "pass_at_k.png"),
            title=f"{name} on {report.config.evaluated_on}: pass@k, originals vs counterfactuals",
        )
    files["summary"] = os.path.join(output_dir, "summary.md")
    files["report"] = os.path.join(output_dir, "report.json")
    with open(files["summary"], "w", encoding="utf-8") as handle:
        handle.write(markdown_summary(report))
    # Written last and atomically: a report.json on disk always belongs to a finished run.
    tmp = files["report"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(report.to_dict(), handle, indent=2)
    os.replace(tmp, files["report"])
    return files
