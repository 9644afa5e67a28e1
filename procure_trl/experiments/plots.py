"""PNG plots of an experiment: the scores of every run, and the training loss curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from procure_trl.plotting import pyplot

__all__ = ["plot_experiment_scores", "plot_training_loss"]


def _positions(rows: Sequence[Mapping[str, Any]], sweep: str | None) -> tuple[list[float], list[str] | None]:
    """x of each run: the swept value (numeric axis), or the variant's index (variant names as tick labels)."""
    if sweep and all(isinstance(row["settings"].get(sweep), (int, float)) for row in rows):
        return [float(row["settings"][sweep]) for row in rows], None
    names = list(dict.fromkeys(row["variant"] for row in rows))
    return [float(names.index(row["variant"])) for row in rows], names


def plot_experiment_scores(
    rows: Sequence[Mapping[str, Any]], path: str, *, sweep: str | None = None, title: str = ""
) -> str:
    """pass@1 and CCS (with its interval) of every evaluated run; one point per seed, the seeds' mean as a line
    (sweep) or a bar. x: the swept field's value when ``sweep`` names one, else the variants."""
    plt = pyplot()
    xs, names = _positions(rows, sweep)
    # one x axis for both panels: a panel with no score (CCS undefined everywhere) keeps the runs' positions
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.2 * len(set(xs)) + 4.0), 3.8), sharex=True)
    panels = (("pass@1", lambda r: r["pass_at_k"].get("pass@1"), None),
              ("CCS", lambda r: r["ccs"], lambda r: r["ccs_ci"]))
    for ax, (label, value, interval) in zip(axes, panels):
        groups: dict[float, list[float]] = {}
        for x, row in zip(xs, rows):
            v = value(row)
            if v is None:
                ax.annotate("n/a", (x, 0.0), ha="center", va="bottom", fontsize=8, color="grey")
                continue
            groups.setdefault(x, []).append(v)
            ci = interval(row) if interval else None
            err = [[v - ci[0]], [ci[1] - v]] if ci else None
            ax.errorbar([x], [v], yerr=err, fmt="o", color="#4C72B0", capsize=3, markersize=4)
        if groups:
            keys = sorted(groups)
            means = [sum(groups[k]) / len(groups[k]) for k in keys]
            if names is None:
                ax.plot(keys, means, "-", color="#4C72B0", alpha=0.6)
            else:
                ax.bar(keys, means, width=0.6, color="#4C72B0", alpha=0.25)
        ax.set_title(label)
        ax.set_ylim(-0.02, 1.05)
        if names is None:
            ax.set_xlabel(sweep)
        else:
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
            ax.set_xlim(-0.6, len(names) - 0.4)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)


def _save(plt, fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_training_loss(rows: Sequence[Mapping[str, Any]], path: str, *, title: str = "") -> str:
    """The training loss logged per step of every run that logged one (one line per variant and seed)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for row in rows:
        history = [h for h in row["history"] if "loss" in h and "step" in h]
        if history:
            ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".",
                    label=f"{row['variant']} (seed {row['seed']})")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # optimizer steps
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(plt, fig, path)
