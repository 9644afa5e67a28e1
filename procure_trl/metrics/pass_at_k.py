"""The unbiased pass@k estimator of Chen et al. (2021), "Evaluating Large Language Models Trained on Code".

For a problem with ``n`` generated candidates of which ``c`` pass, the probability that at least one of ``k``
candidates drawn without replacement passes is ``1 - C(n - c, k) / C(n, k)``. pass@k of a benchmark is its mean
over problems. Pure Python, no execution: the `evaluate` module in evaluation/metrics/pass_at_k runs the
programs and calls these functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence


def _check_count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return value


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k for one problem with ``n`` candidates of which ``c`` are correct.

    Computed as the product ``prod_{i=n-c+1}^{n} (1 - k / i)`` rather than with binomial coefficients, which
    overflow floats for large ``n``.

    >>> estimate_pass_at_k(n=10, c=1, k=1)
    0.1
    >>> estimate_pass_at_k(n=2, c=1, k=2)
    1.0
    """
    n, c, k = _check_count(n, "n"), _check_count(c, "c"), _check_count(k, "k")
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    if n < 1:
        raise ValueError(f"n (the number of candidates) must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c (the number of correct candidates) must be between 0 and n={n}, got {c}")
    if k > n:
        raise ValueError(f"k={k} is larger than the number of candidates n={n}: pass@{k} is undefined")
    if n - c < k:  # every draw of k candidates contains a correct one
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def check_ks(ks: int | Iterable[int]) -> list[int]:
    """Normalise ``k`` (an int or a list of ints) to a list, refusing non-integers and values <= 0."""
    values = [ks] if isinstance(ks, int) and not isinstance(ks, bool) else list(ks)
    if not values:
        raise ValueError("k must name at least one value, e.g. k=[1, 10]")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"every k must be an int, got {k!r}")
        if k <= 0:
            raise ValueError(f"every k must be >= 1, got {k}")
    return values


def pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], ks: int | Iterable[int]) -> dict[str, float]:
    """pass@k averaged over problems, for every ``k`` in ``ks``: ``{"pass@1": ..., "pass@10": ...}``.

    A ``k`` larger than the number of candidates of some problem cannot be estimated for the benchmark: it is
    left out of the result with a warning (never silently).

    Args:
        num_samples: candidates generated per problem.
        num_correct: candidates that passed, per problem (same length).
        ks: the k values.
    """
    num_samples, num_correct = list(num_samples), list(num_correct)
    if len(num_samples) != len(num_correct):
        raise ValueError(
            "num_samples and num_correct must have one entry per problem; "
            f"got {len(num_samples)} and {len(num_correct)}"
        )
    if not num_samples:
        raise ValueError("pass@k needs at least one problem")
    scores = {}
    for k in check_ks(ks):
        too_few = [i for i, n in enumerate(num_samples) if n < k]
        if too_few:
            warnings.warn(
                f"pass@{k} skipped: {len(too_few)} problem(s) have fewer than {k} candidates "
                f"(e.g. problem {too_few[0]} has {num_samples[too_few[0]]}); generate at least {k} per problem",
                stacklevel=2,
            )
            continue
        scores[f"pass@{k}"] = sum(estimate_pass_at_k(n, c, k) for n, c in zip(num_samples, num_correct)) / len(
            num_samples
        )
    return scores
