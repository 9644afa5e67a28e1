"""The Concept Consistency Score (CCS) and the Absolute Mean Error (AME), as pure functions.

ProCURE asks whether a model that solves a problem still solves it when the program is rewritten in a
semantics-preserving way (an ``if``/``else`` flipped, two independent statements swapped, variables
renamed, ...). The evaluation is organised in *rows*: one row is one (problem, concept) pair, and holds

* ``references[i]``: pass (1) / fail (0) of the ``n`` completions sampled for the *original* program,
* ``predictions[i]``: pass (1) / fail (0) of the ``m`` completions sampled for its *counterfactual*.

Over the ``n * m`` pairs (one original completion, one counterfactual completion) of a row, a pair is
*valid* when at least one of the two passes and *consistent* when both pass. Pairs where both fail
tell nothing about consistency (the model does not solve the problem either way), hence they are left
out. With ``a`` passing original and ``b`` passing counterfactual completions, a row holds
``a * b`` consistent pairs and ``n * m - (n - a) * (m - b)`` valid ones, so no pair is ever enumerated.

``ccs`` pools the pairs of all rows: ``sum(consistent) / sum(valid)``. ``ame`` is the mean, over the rows
that are not all-fail on both sides, of ``|mean(predictions[i]) - mean(references[i])|``: how far the
counterfactual's pass rate moves away from the original's. The bootstrap interval resamples rows
(with replacement) and recomputes the pooled ratio; it is a percentile interval.

Nothing here imports torch, transformers or evaluate: the ``evaluate`` module under
``evaluation/metrics/ccs`` is a thin wrapper over :func:`concept_consistency_score`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from procure_trl.metrics.bootstrap import percentile_interval, pooled_ratio_samples, resample_counts
from procure_trl.metrics.ccs_gap import gap_summary, pass_counts

__all__ = [
    "concept_consistency_score", "ccs_per_group", "bootstrap_ccs_interval", "row_pair_counts", "check_rows",
    "GAP_KEYS", "DEFAULT_PERMUTATIONS",
]

#: Random sign patterns of the paired pass-rate test (when it is not enumerated exactly).
DEFAULT_PERMUTATIONS = 10000

#: What separates consistency from accuracy (:mod:`procure_trl.metrics.ccs_gap`), overall and per concept.
GAP_KEYS = ("ccs_expected", "ccs_gap", "ccs_gap_ci", "pass_gap", "pass_gap_ci", "pass_gap_p")


def check_rows(name: str, rows: Sequence[Sequence[int]]) -> list[list[int]]:
    """Check that ``rows`` is a list of non-empty lists of 0/1 values; return it as plain ints.

    ``name`` ("predictions" or "references") names the argument in the error message.
    """
    checked: list[list[int]] = []
    for i, row in enumerate(rows):
        try:
            if isinstance(row, (str, bytes, dict)):
                raise TypeError
            values = list(row)
        except TypeError:
            raise ValueError(
                f"{name}[{i}] must be a list of 0/1 results (one per completion), got {type(row).__name__}"
            ) from None
        if not values:
            raise ValueError(
                f"{name}[{i}] is empty: every row needs the pass/fail result of at least one completion "
                "(drop the row, or sample completions for it)"
            )
        for j, value in enumerate(values):
            # bool is an int; 1.0 == 1 is accepted, 0.5 and 2 are not.
            if isinstance(value, (str, bytes)) or value not in (0, 1):
                raise ValueError(
                    f"{name}[{i}][{j}] = {value!r}: results must be 0 (fail) or 1 (pass); "
                    "convert execution verdicts with int(result.passed)"
                )
        checked.append([int(v) for v in values])
    return checked


def row_pair_counts(prediction: Sequence[int], reference: Sequence[int]) -> tuple[int, int]:
    """``(consistent, valid)`` pair counts of one row, from pass counts alone.

    With ``a`` of ``n`` original and ``b`` of ``m`` counterfactual completions passing, ``a * b`` pairs
    pass on both sides and ``(n - a) * (m - b)`` fail on both sides (the pairs that are not valid).
    """
    n, a = len(reference), int(sum(reference))
    m, b = len(prediction), int(sum(prediction))
    return a * b, n * m - (n - a) * (m - b)


def bootstrap_ccs_interval(
    consistent: Sequence[int] | np.ndarray,
    valid: Sequence[int] | np.ndarray,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the pooled ratio ``sum(consistent) / sum(valid)`` over rows.

    Each of ``n_bootstrap`` resamples draws as many rows as there are, with replacement. Resamples
    without a valid pair have no ratio and are left out; ``None`` when no resample has one (or
    ``n_bootstrap`` is 0).
    """
    consistent = np.asarray(consistent, dtype=np.int64)
    valid = np.asarray(valid, dtype=np.int64)
    if n_bootstrap <= 0 or len(valid) == 0 or valid.sum() == 0:
        return None
    # Pooled counts of every resample at once (a matrix product), not a Python loop over resamples.
    ratios = pooled_ratio_samples(consistent, valid, resample_counts(len(valid), n_bootstrap, seed))
    return percentile_interval(ratios, confidence)


def _ame(predictions: list[list[int]], references: list[list[int]]) -> float | None:
    gaps = [
        abs(float(np.mean(p)) - float(np.mean(r)))
        for p, r in zip(predictions, references)
        if any(p) or any(r)  # all-fail on both sides: the model cannot solve it either way
    ]
    return float(np.mean(gaps)) if gaps else None


def _summary(
    predictions: list[list[int]],
    references: list[list[int]],
    confidence: float,
    n_bootstrap: int,
    seed: int,
    n_permutations: int = DEFAULT_PERMUTATIONS,
) -> dict[str, Any]:
    counts = [row_pair_counts(p, r) for p, r in zip(predictions, references)]
    consistent = [c for c, _ in counts]
    valid = [v for _, v in counts]
    total_valid = int(sum(valid))
    # One set of resamples serves every interval of these rows (CCS, its gap, the pass-rate gap).
    weights = resample_counts(len(valid), n_bootstrap, seed) if n_bootstrap > 0 and valid else None
    (a, n), (b, m) = pass_counts(references), pass_counts(predictions)
    return {
        **gap_summary(a, n, b, m, weights, confidence, n_permutations, seed),
        "consistent_pairs": int(sum(consistent)),
        "valid_pairs": total_valid,
        "ame": _ame(predictions, references),
        "rows": len(predictions),
    }


def ccs_per_group(
    predictions: Sequence[list[int]],
    references: Sequence[list[int]],
    groups: Sequence[str],
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_permutations: int = DEFAULT_PERMUTATIONS,
) -> dict[str, dict[str, Any]]:
    """``ccs``, ``ccs_ci``, the :data:`GAP_KEYS`, ``consistent_pairs``, ``valid_pairs``, ``ame`` and ``rows`` of
    each group of rows (``groups[i]``: the group of row ``i``), keyed in order of first appearance, without the
    overall score.

    Rows are lists of 0/1 (as :func:`check_rows` returns them). Group ``k`` (0-based, in that order) is
    bootstrapped with ``seed + 1 + k``, so the groups' resamples are independent of each other and of the
    overall score's (``seed``); so are the sign patterns of its paired test.
    """
    rows_of: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        rows_of.setdefault(str(group), []).append(i)
    return {
        group: _summary(
            [predictions[i] for i in rows], [references[i] for i in rows], confidence, n_bootstrap, seed + 1 + offset,
            n_permutations,
        )
        for offset, (group, rows) in enumerate(rows_of.items())
    }


def concept_consistency_score(
    predictions: Sequence[Sequence[int]],
    references: Sequence[Sequence[int]],
    concepts: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_permutations: int = DEFAULT_PERMUTATIONS,
) -> dict[str, Any]:
    """Concept Consistency Score, AME, the CCS expected by chance and the paired pass-rate test, with bootstrap
    intervals, overall and per concept.

    Args:
        predictions: one row per (problem, concept) pair: pass (1) / fail (0) of each completion sampled
            for the counterfactual program.
        references: the same rows for the original program (row ``i`` of both lists is the same pair).
            Row lengths may differ between the two lists and between rows.
        concepts: the concept of each row (e.g. ``Concept.IF_ELSE_FLIP.value``); when given, the result
            also holds per-concept scores, keyed in order of first appearance.
        confidence: coverage of the bootstrap intervals, in (0, 1).
        n_bootstrap: number of bootstrap resamples of rows; 0 skips the intervals.
        seed: seed of the bootstrap's random generator (the same seed gives the same intervals) and of the
            paired test's sign patterns.
        n_permutations: random sign patterns of the paired pass-rate test when it is not enumerated exactly;
            0 skips its p-value.

    Returns:
        A dict with ``ccs`` (pooled consistent / valid pairs, ``None`` when no pair is valid),
        ``ccs_ci`` (``(low, high)`` or ``None``), ``consistent_pairs``, ``valid_pairs``, ``ame``
        (``None`` when every row fails on both sides), ``rows``; the :data:`GAP_KEYS`
        (:mod:`procure_trl.metrics.ccs_gap`): ``ccs_expected`` (the CCS expected if each row's two sides were
        exchangeable), ``ccs_gap`` = ``ccs - ccs_expected`` and ``ccs_gap_ci``, ``pass_gap`` (mean over rows of
        counterfactual minus reference pass rate), ``pass_gap_ci`` and ``pass_gap_p`` (sign-flip permutation
        test); and ``ccs_per_concept``, ``ccs_ci_per_concept``, ``ame_per_concept``, ``<key>_per_concept`` for
        each of the :data:`GAP_KEYS`, ``pairs_per_concept`` (``{concept: {"consistent", "valid", "rows"}}``),
        all empty when ``concepts`` is ``None``.

    Raises:
        ValueError: lists of different lengths, no rows, an empty row, a value other than 0/1,
            ``concepts`` of the wrong length, a confidence outside (0, 1), or a negative ``n_bootstrap`` or
            ``n_permutations``.
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions has {len(predictions)} rows but references has {len(references)}: row i of both "
            "must describe the same (problem, concept) pair"
        )
    if len(predictions) == 0:
        raise ValueError("no rows: pass at least one (problem, concept) pair")
    if concepts is not None and len(concepts) != len(predictions):
        raise ValueError(
            f"concepts has {len(concepts)} entries but there are {len(predictions)} rows: give one concept "
            "per row, or concepts=None"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must lie strictly between 0 and 1 (e.g. 0.95)")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap={n_bootstrap!r} must be >= 0 (0 skips the interval)")
    if n_permutations < 0:
        raise ValueError(f"n_permutations={n_permutations!r} must be >= 0 (0 skips the paired test's p-value)")
    preds = check_rows("predictions", predictions)
    refs = check_rows("references", references)

    result = _summary(preds, refs, confidence, n_bootstrap, seed, n_permutations)
    if result["ccs"] is None:
        warnings.warn(
            "CCS is undefined: no valid pair (every completion fails on both the original and the "
            "counterfactual side); returning ccs=None",
            RuntimeWarning,
            stacklevel=2,
        )

    groups = (
        ccs_per_group(preds, refs, concepts, confidence, n_bootstrap, seed, n_permutations)
        if concepts is not None else {}
    )
    result.update(
        ccs_per_concept={concept: part["ccs"] for concept, part in groups.items()},
        ccs_ci_per_concept={concept: part["ccs_ci"] for concept, part in groups.items()},
        ame_per_concept={concept: part["ame"] for concept, part in groups.items()},
        **{f"{key}_per_concept": {concept: part[key] for concept, part in groups.items()} for key in GAP_KEYS},
        pairs_per_concept={
            concept: {"consistent": part["consistent_pairs"], "valid": part["valid_pairs"], "rows": part["rows"]}
            for concept, part in groups.items()
        },
    )
    return result
