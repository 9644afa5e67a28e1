"""The attention report's figure: mean attention mass per layer, perturbed vs control, base vs adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from procure_trl.harness.plots import _pyplot

__all__ = ["plot_attention_by_layer"]

_COLORS = {"base": "#4C72B0", "adapter": "#DD8452"}


def plot_attention_by_layer(results: Mapping[str, Mapping[str, Any]], path: str, title: str = "") -> str:
    """One line per model and key set (solid: perturbed tokens, dashed: control), with a band of ±1 standard
    error over rows. ``results`` maps ``"base"``/``"adapter"`` to the ``layers`` list of the report."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for name, result in results.items():
        layers = result["layers"]
        xs = [entry["layer"] for entry in layers]
        for keys, style in (("perturbed", "-"), ("control", "--")):
            ys = [entry[keys]["mean"] for entry in layers]
            sem = [entry[keys]["sem"] for entry in layers]
            color = _COLORS.get(name)
            ax.plot(xs, ys, style, marker="o", markersize=3, color=color, label=f"{name}: {keys}")
            ax.fill_between(xs, [y - e for y, e in zip(ys, sem)], [y + e for y, e in zip(ys, sem)],
                            color=color, alpha=0.15, linewidth=0)
    ax.set(xlabel="decoder layer", ylabel="mean attention mass $m_q$",
           title=title or "Attention of completion queries after the first change")
    ax.set_ylim(bottom=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
