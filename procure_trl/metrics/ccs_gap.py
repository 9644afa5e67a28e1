"""Consistency separated from accuracy: the CCS expected by chance, the gap to it, and a paired pass-rate test.

Raw CCS tracks the pass rate. With ``n`` sampled completions per side and a model that is perfectly
concept-invariant (the same pass rate ``p`` on the original and on the counterfactual, samples independent),
a pair is consistent with probability ``p**2`` and valid with probability ``1 - (1 - p)**2``, so
CCS = ``p / (2 - p)``: 0.11 at p = 0.2, 0.67 at p = 0.8. A model that only solves more problems "gains CCS".

Two statistics separate consistency from accuracy. Both work on *rows* (one row: one (problem, concept) pair;
``a`` of the ``n`` reference completions pass, ``b`` of the ``m`` counterfactual completions):

* **ccs_expected**: the CCS expected if the two sides of each row were exchangeable, i.e. if the row's
  ``n + m`` outcomes were shuffled between the sides. The reference side then holds ``A`` passes, ``A``
  hypergeometric (``n + m`` outcomes, ``a + b`` passes, ``n`` drawn); :func:`expected_pair_counts` gives the
  expected consistent and valid pairs of each row exactly from the hypergeometric moments, and
  ``ccs_expected`` pools them like CCS pools the observed counts (sum of expected consistent / sum of
  expected valid). ``ccs_gap = ccs - ccs_expected`` is about 0 for a concept-invariant model at any pass rate
  and negative when a row's passes cluster on one side. ``ccs_gap_ci`` is a percentile bootstrap over rows
  (a row's expected counts travel with it). With one completion per side (greedy decoding) the shuffle
  cannot move a row's pair counts, so ``ccs_expected == ccs`` and the gap is 0 by construction: the paired
  test below is then the tool.
* **pass_gap**: the mean over rows of (counterfactual pass rate - reference pass rate) of the row, with a
  percentile row-bootstrap interval ``pass_gap_ci`` and ``pass_gap_p``, the two-sided p-value of a sign-flip
  permutation test (under "the change does not matter" each row's difference is as likely negated: the test
  flips the signs at random and counts how often the mean is at least as far from 0). The flips are
  enumerated exactly for up to :data:`EXACT_SIGN_FLIP_ROWS` rows with a non-zero difference, drawn at random
  otherwise (p = (1 + hits) / (1 + draws), never 0).

Everything here is vectorised numpy over rows; nothing imports torch, transformers or evaluate.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from procure_trl.metrics.bootstrap import percentile_interval

__all__ = [
    "EXACT_SIGN_FLIP_ROWS",
    "pass_counts",
    "pair_counts",
    "expected_pair_counts",
    "ccs_expected",
    "row_pass_gaps",
    "sign_flip_p_value",
    "gap_summary",
]

#: Up to this many rows with a non-zero pass-rate difference, the sign-flip test enumerates all 2**rows flips.
EXACT_SIGN_FLIP_ROWS = 14


def pass_counts(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(passes, completions)`` of each row of 0/1 results, as int arrays."""
    return (np.array([int(sum(r)) for r in rows], dtype=np.int64), np.array([len(r) for r in rows], dtype=np.int64))


def pair_counts(a: np.ndarray, n: np.ndarray, b: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observed ``(consistent, valid)`` pairs per row: ``a * b`` and ``n * m - (n - a) * (m - b)``.

    ``a`` of ``n`` reference and ``b`` of ``m`` counterfactual completions pass (arrays of one value per row).
    """
    a, n, b, m = (np.asarray(x, dtype=float) for x in (a, n, b, m))
    return a * b, n * m - (n - a) * (m - b)


def _cross_moment(total: np.ndarray, n: np.ndarray, size: np.ndarray) -> np.ndarray:
    """``E[X * (total - X)]`` for ``X`` hypergeometric: ``n`` drawn from ``size`` items of which ``total`` are marked.

    ``X`` is what the first side gets, ``total - X`` what the other side gets.
    """
    share = total / size
    mean = n * share
    # size >= 2 always (each side holds at least one completion), so size - 1 > 0
    variance = n * share * (1.0 - share) * (size - n) / (size - 1.0)
    return total * mean - (variance + mean**2)


def expected_pair_counts(
    a: np.ndarray, n: np.ndarray, b: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expected ``(consistent, valid)`` pairs per row if the row's ``n + m`` outcomes were shuffled between sides.

    Exact: the reference side's passes ``A`` are hypergeometric, consistent pairs are ``A * (s - A)`` with
    ``s = a + b``, pairs failing on both sides ``F * (f - F)`` with ``F = n - A`` the reference side's fails
    (hypergeometric too) and ``f`` the row's fails; their means follow from the hypergeometric mean and
    variance.
    """
    a, n, b, m = (np.asarray(x, dtype=float) for x in (a, n, b, m))
    size = n + m
    consistent = _cross_moment(a + b, n, size)
    both_fail = _cross_moment(size - a - b, n, size)
    return consistent, n * m - both_fail


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> float | None:
    total = float(np.sum(denominator))
    return float(np.sum(numerator)) / total if total > 0 else None


def ccs_expected(a: np.ndarray, n: np.ndarray, b: np.ndarray, m: np.ndarray) -> float | None:
    """The pooled CCS expected under exchangeable sides (see the module docstring); ``None`` when every
    completion of every row fails (no pair can be valid)."""
    return _ratio(*expected_pair_counts(a, n, b, m))


def row_pass_gaps(a: np.ndarray, n: np.ndarray, b: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per row: counterfactual pass rate minus reference pass rate, ``b / m - a / n``."""
    passed_cf, total_cf = np.asarray(b, dtype=float), np.asarray(m, dtype=float)
    passed_ref, total_ref = np.asarray(a, dtype=float), np.asarray(n, dtype=float)
    return passed_cf / total_cf - passed_ref / total_ref


def sign_flip_p_value(
    differences: Sequence[float] | np.ndarray, n_permutations: int = 10000, seed: int = 0
) -> float | None:
    """Two-sided p-value of the sign-flip permutation test of ``mean(differences) == 0``.

    Rows with difference 0 do not change under a flip and are left out. Up to :data:`EXACT_SIGN_FLIP_ROWS`
    remaining rows, every sign pattern is enumerated (the exact p-value); otherwise ``n_permutations`` random
    patterns are drawn and ``p = (1 + hits) / (1 + n_permutations)``. ``None`` without rows or with
    ``n_permutations`` 0; 1.0 when every difference is 0.
    """
    values = np.asarray(differences, dtype=float)
    if values.size == 0 or n_permutations <= 0:
        return None
    values = values[values != 0]
    if values.size == 0:
        return 1.0
    observed = abs(values.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(values).sum()))  # equal sums must count as "at least as far"
    if values.size <= EXACT_SIGN_FLIP_ROWS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=values.size)))
        return float(np.mean(np.abs(signs @ values) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(n_permutations, values.size), dtype=np.int8) * 2 - 1
    hits = int(np.count_nonzero(np.abs(signs @ values) >= observed - tolerance))
    return (1 + hits) / (1 + n_permutations)


def _resampled_ratio(totals: np.ndarray, numerator: int, denominator: int) -> np.ndarray:
    """Column ``numerator`` over column ``denominator`` of per-resample totals; NaN where the denominator is 0."""
    out = np.full(len(totals), np.nan)
    np.divide(totals[:, numerator], totals[:, denominator], out=out, where=totals[:, denominator] > 0)
    return out


def gap_summary(
    a: np.ndarray, n: np.ndarray, b: np.ndarray, m: np.ndarray, weights: np.ndarray | None, confidence: float,
    n_permutations: int, seed: int,
) -> dict[str, Any]:
    """``ccs``, ``ccs_ci`` and the gap statistics (``ccs_expected``, ``ccs_gap``, ``ccs_gap_ci``, ``pass_gap``,
    ``pass_gap_ci``, ``pass_gap_p``) of a set of rows.

    Args:
        a, n: per row, passing and sampled reference completions.
        b, m: the same for the counterfactual.
        weights: bootstrap resample counts over these rows (``None``: no intervals).
        confidence: coverage of the intervals.
        n_permutations: random sign patterns of the paired test when it is not exact (0: no p-value).
        seed: seed of the sign patterns.
    """
    consistent, valid = pair_counts(a, n, b, m)
    expected_consistent, expected_valid = expected_pair_counts(a, n, b, m)
    observed, expected = _ratio(consistent, valid), _ratio(expected_consistent, expected_valid)
    gaps = row_pass_gaps(a, n, b, m)
    out: dict[str, Any] = {
        "ccs": observed,
        "ccs_ci": None,
        "ccs_expected": expected,
        "ccs_gap": None if observed is None or expected is None else observed - expected,
        "ccs_gap_ci": None,
        "pass_gap": float(gaps.mean()) if gaps.size else None,
        "pass_gap_ci": None,
        "pass_gap_p": sign_flip_p_value(gaps, n_permutations, seed),
    }
    if weights is None or not gaps.size:
        return out
    # Every resample's totals in one product: the resampled rows carry their observed and expected counts.
    totals = np.asarray(weights, dtype=float) @ np.column_stack(
        [consistent, valid, expected_consistent, expected_valid, gaps]
    )
    if observed is not None:
        ccs_samples = _resampled_ratio(totals, 0, 1)
        out["ccs_ci"] = percentile_interval(ccs_samples, confidence)
        out["ccs_gap_ci"] = percentile_interval(ccs_samples - _resampled_ratio(totals, 2, 3), confidence)
    out["pass_gap_ci"] = percentile_interval(totals[:, 4] / gaps.size, confidence)
    return out
