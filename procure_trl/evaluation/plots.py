"""PNG plots of an evaluation report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from procure_trl.plotting import pyplot

__all__ = [
    "plot_ccs_by_sites", "plot_ccs_per_concept", "plot_pass_at_k", "plot_runs_grouped", "plot_paired_differences"
]


def plot_ccs_per_concept(per_concept: Sequence[Mapping[str, Any]], path: str, title: str = "") -> str:
    """Bar chart of CCS per concept with its bootstrap interval; concepts without a CCS are marked n/a."""
    plt = pyplot()
    names = [row["concept"] for row in per_concept]
    values, low, high = _interval_errors(
        [row["ccs"] for row in per_concept], [row.get("ccs_ci") for row in per_concept]
    )
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names) + 1.5), 3.6))
    bars = ax.bar(names, values, yerr=[low, high], capsize=4, color="#4C72B0")
    for bar, row in zip(bars, per_concept):
        label = "n/a"
        if row["ccs"] is not None:
            label = f"{row['ccs']:.2f}\n{row.get('valid_pairs', 0)} pairs\n{row.get('rows', 0)} rows"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, 0.02), ha="center", va="bottom", fontsize=7,
                    color="white" if row["ccs"] and row["ccs"] > 0.15 else "black")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Concept Consistency Score")
    ax.set_title(title or "CCS per concept (bootstrap interval)")
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_ccs_by_sites(per_sites: Sequence[Mapping[str, Any]], path: str, title: str = "") -> str:
    """CCS against the number of changed sites, one line per concept (with its bootstrap interval)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for concept in dict.fromkeys(row["concept"] for row in per_sites):
        points = [row for row in per_sites if row["concept"] == concept and row["ccs"] is not None]
        if not points:
            continue
        xs = [row["sites"] for row in points]
        ys = [row["ccs"] for row in points]
        low = [y - row["ccs_ci"][0] if row.get("ccs_ci") else 0.0 for y, row in zip(ys, points)]
        high = [row["ccs_ci"][1] - y if row.get("ccs_ci") else 0.0 for y, row in zip(ys, points)]
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=concept)
    ax.set_xlabel("sites changed")
    ax.set_ylabel("Concept Consistency Score")
    ax.set_ylim(0, 1.05)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title or "CCS by site count")
    if ax.get_legend_handles_labels()[0]:  # no concept with a defined CCS: nothing to name (matplotlib would warn)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pass_at_k(pass_at_k: Mapping[str, Any], ks: Sequence[int], path: str, title: str = "") -> str:
    """pass@k per concept: the reference (original, cut) next to the counterfactual (cut), one panel per k;
    the dashed line is pass@k on the benchmark's own prompts."""
    plt = pyplot()
    concepts = list(pass_at_k.get("counterfactual", {}))
    panel_width = 0.9 * max(len(concepts), 1) + 1.5
    fig, axes = plt.subplots(1, len(ks), figsize=(panel_width * len(ks), 3.8), squeeze=False, sharey=True)
    width = 0.38
    for ax, k in zip(axes[0], ks):
        key = f"pass@{k}"
        xs = range(len(concepts))
        ref = [pass_at_k["reference"][c].get(key, 0.0) for c in concepts]
        cf = [pass_at_k["counterfactual"][c].get(key, 0.0) for c in concepts]
        ax.bar([x - width / 2 for x in xs], ref, width, label="original (cut)", color="#55A868")
        ax.bar([x + width / 2 for x in xs], cf, width, label="counterfactual (cut)", color="#C44E52")
        if key in pass_at_k.get("original", {}):
            ax.axhline(pass_at_k["original"][key], color="black", linestyle="--", linewidth=1,
                       label="original (benchmark prompt)")
        ax.set_xticks(list(xs), concepts, rotation=25, ha="right")
        ax.set_ylim(0, 1.0)
        ax.set_title(key)
    axes[0][0].set_ylabel("pass@k")
    handles, labels = axes[0][0].get_legend_handles_labels()
    # One legend for all panels, outside the axes: it never hides a bar.
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title or "pass@k: originals vs counterfactuals")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _interval_errors(values: Sequence[float | None], cis: Sequence[Sequence[float] | None]) -> tuple[list, list, list]:
    """Bar heights (``None`` -> 0) and the lower / upper error lengths of their intervals (0 without one)."""
    heights = [v if v is not None else 0.0 for v in values]
    low = [h - ci[0] if ci and v is not None else 0.0 for h, v, ci in zip(heights, values, cis)]
    high = [ci[1] - h if ci and v is not None else 0.0 for h, v, ci in zip(heights, values, cis)]
    return heights, low, high


def plot_runs_grouped(
    groups: Sequence[str],
    runs: Sequence[Mapping[str, Any]],
    path: str,
    *,
    title: str,
    ylabel: str,
) -> str:
    """Grouped bars with interval whiskers: one group per ``groups`` entry, one bar per run.

    Each run is ``{"label": str, "cells": {group: {"value": float | None, "ci": [low, high] | None}}}``; a
    missing or undefined value is drawn as an empty bar labelled n/a.
    """
    plt = pyplot()
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * max(len(runs), 1) * 0.6 + 2.5), 4.2))
    for j, run in enumerate(runs):
        cells = [run["cells"].get(g) or {} for g in groups]
        values = [c.get("value") for c in cells]
        heights, low, high = _interval_errors(values, [c.get("ci") for c in cells])
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(groups))]
        ax.bar(xs, heights, width, yerr=[low, high], capsize=3, label=run["label"])
        for x, value in zip(xs, values):
            ax.annotate("n/a" if value is None else f"{value:.2f}", (x, 0.01), ha="center", va="bottom", fontsize=7,
                        rotation=90)
    ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_paired_differences(
    names: Sequence[str], cells: Sequence[Mapping[str, Any] | None], path: str, *, title: str
) -> str:
    """Differences with their paired intervals, one line per name (a point and a whisker), around a zero line.

    ``cells[i]`` is ``{"difference": float | None, "ci": [low, high] | None}`` or ``None`` (nothing shared).
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.6))
    for y, (_name, cell) in enumerate(zip(names, cells)):
        diff = (cell or {}).get("difference")
        ci = (cell or {}).get("ci")
        if diff is None:
            ax.annotate("n/a", (0, y), ha="center", va="center", fontsize=8)
            continue
        if ci:
            ax.plot(ci, [y, y], color="#4C72B0", linewidth=2)
        ax.plot([diff], [y], "o", color="#C44E52")
        ax.annotate(f"{diff:+.3f}" + (f"  [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""), (diff, y + 0.22),
                    ha="center", fontsize=7)
    ax.axvline(0.0, color="black", linewidth=1, linestyle="--")
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel("difference (other - baseline)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
