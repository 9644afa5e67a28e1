"""The attention report's figure: mean attention mass per layer, base vs adapter, perturbed vs control."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from procure_trl.plotting import pyplot

__all__ = ["plot_attention_by_layer"]

_COLORS = {"base": "#4C72B0", "adapter": "#DD8452"}
#: (panel, key in the report's layers, line style, legend label)
_LINES = (
    (0, "perturbed", "-", "perturbed"),
    (1, "perturbed_matched", "-", "perturbed"),
    (1, "control", "--", "control"),
)


def plot_attention_by_layer(results: Mapping[str, Mapping[str, Any]], path: str, title: str = "") -> str:
    """Left: ``m_q`` over the attention term's queries; right: over the matched queries, on the perturbed tokens
    (solid) and on the control (dashed). One color per model, a band of ±1 standard error over rows.
    ``results`` maps ``"base"``/``"adapter"`` to a model's results in the report."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8), sharey=True)
    for name, result in results.items():
        color = _COLORS.get(name)
        for panel, key, style, label in _LINES:
            points = [
                (e["layer"], e[key]["mean"], e[key]["sem"]) for e in result["layers"] if e[key]["mean"] is not None
            ]
            if not points:
                continue
            xs, ys, sem = zip(*points)
            axes[panel].plot(xs, ys, style, marker="o", markersize=3, color=color, label=f"{name}: {label}")
            axes[panel].fill_between(xs, [y - e for y, e in zip(ys, sem)], [y + e for y, e in zip(ys, sem)],
                                     color=color, alpha=0.15, linewidth=0)
    axes[0].set(ylabel="mean attention mass $m_q$",
                title=f"queries of the attention term ({next(iter(results.values()))['rows']} rows)")
    axes[1].set(title=f"matched queries: perturbed vs control ({next(iter(results.values()))['matched_rows']} rows)")
    for ax in axes:
        ax.set_xlabel("decoder layer")
        ax.set_ylim(bottom=0)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    fig.suptitle(title or "Attention of completion queries on perturbed tokens", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
