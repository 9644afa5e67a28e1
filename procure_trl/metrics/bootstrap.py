"""Percentile bootstrap over items (problems or rows), vectorised: one draw of resample counts serves any statistic.

A resample draws as many items as there are, with replacement; ``weights[b, i]`` is how often item ``i`` is drawn
in resample ``b``. Pooled ratios and means over a resample are then matrix products, and two runs scored on the
same items share the weights: that is the paired bootstrap of a difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["resample_counts", "percentile_interval", "pooled_ratio_samples", "mean_samples", "mean_interval",
           "paired_mean_difference"]


def resample_counts(n_items: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """``(n_bootstrap, n_items)`` draw counts: row ``b`` says how often each item is drawn in resample ``b``."""
    rng = np.random.default_rng(seed)
    if n_items == 0:
        return np.zeros((n_bootstrap, 0), dtype=np.int64)
    # Draw the items of every resample, then count them per resample with one bincount over offset indices:
    # the same multinomial counts as rng.multinomial(n_items, uniform), about 15 times faster.
    drawn = rng.integers(0, n_items, size=(n_bootstrap, n_items), dtype=np.int64)
    drawn += (np.arange(n_bootstrap, dtype=np.int64) * n_items)[:, None]
    return np.bincount(drawn.ravel(), minlength=n_bootstrap * n_items).reshape(n_bootstrap, n_items)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """The central ``confidence`` share of the finite ``samples``; ``None`` when there is none."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None
    alpha = 1.0 - confidence
    low, high = np.quantile(samples, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def pooled_ratio_samples(
    numerators: Sequence[float] | np.ndarray, denominators: Sequence[float] | np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """``sum(numerators) / sum(denominators)`` of every resample; NaN where a resample's denominator is 0."""
    num = weights @ np.asarray(numerators, dtype=float)
    den = weights @ np.asarray(denominators, dtype=float)
    out = np.full(len(weights), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def mean_samples(values: Sequence[float] | np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean of ``values`` over every resample."""
    values = np.asarray(values, dtype=float)
    return (weights @ values) / len(values)


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float, n_bootstrap: int,
                  seed: int) -> tuple[float, tuple[float, float] | None]:
    """The mean of ``values`` (at least one) and its percentile bootstrap interval over the items."""
    samples = mean_samples(values, resample_counts(len(values), n_bootstrap, seed))
    return float(np.mean(values)), percentile_interval(samples, confidence)


def paired_mean_difference(baseline: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray,
                           confidence: float, n_bootstrap: int, seed: int) -> tuple[float, tuple[float, float] | None]:
    """``mean(other) - mean(baseline)`` over the same items and its paired bootstrap interval (each resample draws
    the same items for both)."""
    weights = resample_counts(len(baseline), n_bootstrap, seed)
    samples = mean_samples(other, weights) - mean_samples(baseline, weights)
    return float(np.mean(other) - np.mean(baseline)), percentile_interval(samples, confidence)
