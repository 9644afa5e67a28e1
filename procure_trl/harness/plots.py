"""PNG plots of an evaluation report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["plot_ccs_by_sites", "plot_ccs_per_concept", "plot_pass_at_k"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never opens a window, works on servers
    import matplotlib.pyplot as plt

    return plt


def plot_ccs_per_concept(per_concept: Sequence[Mapping[str, Any]], path: str, title: str = "") -> str:
    """Bar chart of CCS per concept with its bootstrap interval; concepts without a CCS are marked n/a."""
    plt = _pyplot()
    names = [row["concept"] for row in per_concept]
    values = [row["ccs"] if row["ccs"] is not None else 0.0 for row in per_concept]
    low = [v - row["ccs_ci"][0] if row.get("ccs_ci") else 0.0 for v, row in zip(values, per_concept)]
    high = [row["ccs_ci"][1] - v if row.get("ccs_ci") else 0.0 for v, row in zip(values, per_concept)]
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
    plt = _pyplot()
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
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pass_at_k(pass_at_k: Mapping[str, Any], ks: Sequence[int], path: str, title: str = "") -> str:
    """pass@k per concept: the reference (original, cut) next to the counterfactual (cut), one panel per k;
    the dashed line is pass@k on the benchmark's own prompts."""
    plt = _pyplot()
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
