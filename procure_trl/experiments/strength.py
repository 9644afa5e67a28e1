"""CCS against the number of changed sites, per run of an experiment (the strength test, experiments/strength.yaml).

Each evaluated run's ``report.json`` keeps every counterfactual row with its site count
(:class:`~procure_trl.evaluation.compare.RowKey`); the rows of a run are grouped by site count and scored with the CCS
metric (pooled over the concepts the run scored, bootstrap interval per group). Written into the experiment's table
and ``ccs_by_sites.png`` when the runs hold more than one site count.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from procure_trl.evaluation.report import format_value

__all__ = ["ccs_by_sites", "sites_markdown", "plot_ccs_against_sites", "write_strength"]


def ccs_by_sites(rows: Mapping[Any, tuple[list[int], list[int]]], confidence: float = 0.95, n_bootstrap: int = 1000,
                 seed: int = 0) -> dict[int, dict[str, Any]]:
    """``{sites: {"ccs", "ccs_ci", "rows"}}`` over ``rows`` (:class:`RowKey` -> (reference, counterfactual) results),
    site counts ascending."""
    import warnings

    from procure_trl.metrics.ccs import ccs_per_group

    keys = sorted(rows, key=lambda key: key.sites or 0)
    if not keys:
        return {}
    with warnings.catch_warnings():  # a site count without a valid pair: CCS None, the table says n/a
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = ccs_per_group([rows[k][1] for k in keys], [rows[k][0] for k in keys], [str(k.sites) for k in keys],
                               confidence=confidence, n_bootstrap=n_bootstrap, seed=seed)
    return {int(group): {"ccs": part["ccs"], "ccs_ci": part["ccs_ci"], "rows": part["rows"]}
            for group, part in scores.items()}


def sites_markdown(per_run: Sequence[tuple[str, Mapping[int, Mapping[str, Any]]]]) -> str:
    """A table: one line per run, one column per site count (CCS, interval, rows)."""
    counts = sorted({sites for _, scores in per_run for sites in scores})
    lines = ["## CCS by number of changed sites", "",
             "CCS of each run over its counterfactual rows grouped by how many places they change (pooled over the "
             "concepts scored; interval: bootstrap over the rows of the group).", "",
             "| run | " + " | ".join(f"{k} site{'s' if k != 1 else ''}" for k in counts) + " |",
             "|---|" + "---|" * len(counts)]
    for label, scores in per_run:
        cells = []
        for k in counts:
            part = scores.get(k)
            if part is None:
                cells.append("")
            else:  # no valid pair in the group: one n/a, not one for the score and one for its interval
                score = format_value(part["ccs"]) + ("" if part["ccs"] is None else f" {format_value(part['ccs_ci'])}")
                cells.append(f"{score} ({part['rows']} rows)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_ccs_against_sites(per_run: Sequence[tuple[str, Mapping[int, Mapping[str, Any]]]], path: str,
                           title: str = "") -> str:
    """CCS against the site count, one line per run, with the bootstrap intervals."""
    from procure_trl.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for label, scores in per_run:
        points = [(k, part) for k, part in sorted(scores.items()) if part["ccs"] is not None]
        if not points:
            continue
        xs, ys = [k for k, _ in points], [part["ccs"] for _, part in points]
        err = [[y - (p["ccs_ci"] or (y, y))[0] for y, (_, p) in zip(ys, points)],
               [(p["ccs_ci"] or (y, y))[1] - y for y, (_, p) in zip(ys, points)]]
        ax.errorbar(xs, ys, yerr=err, fmt="-o", capsize=3, markersize=4, label=label)
    ax.set_xlabel("sites changed")
    ax.set_ylabel("CCS")
    ax.set_ylim(0, 1.05)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_strength(runs: Sequence[tuple[str, str]], output_dir: str, *, confidence: float = 0.95,
                   n_bootstrap: int = 1000, title: str = "") -> tuple[str, dict[str, str]]:
    """For evaluated runs ``(label, evaluation folder)``: the Markdown section and ``ccs_by_sites.png`` when the
    runs hold more than one site count; ``("", {})`` otherwise."""
    from procure_trl.evaluation.compare import load_run

    per_run = [(label, ccs_by_sites(load_run(folder).rows, confidence, n_bootstrap)) for label, folder in runs]
    if len({sites for _, scores in per_run for sites in scores}) < 2:
        return "", {}
    path = plot_ccs_against_sites(per_run, os.path.join(output_dir, "ccs_by_sites.png"), title=title)
    return sites_markdown(per_run), {"ccs_sites_plot": path}
