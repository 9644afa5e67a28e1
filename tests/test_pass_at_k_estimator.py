"""The unbiased pass@k estimator (pure) against brute-force enumeration and edge cases."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest

from procure_trl.metrics.pass_at_k import check_ks, estimate_pass_at_k, pass_at_k


@pytest.mark.parametrize("n, c, k", [(5, 2, 1), (5, 2, 2), (6, 3, 4), (7, 0, 3), (7, 7, 1), (8, 1, 8), (4, 3, 2)])
def test_estimator_equals_enumeration_over_all_draws(n, c, k):
    # Candidates 0..c-1 are correct; count the k-subsets that contain at least one of them.
    draws = list(itertools.combinations(range(n), k))
    expected = sum(any(i < c for i in draw) for draw in draws) / len(draws)
    assert estimate_pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_estimator_equals_closed_form_for_large_n():
    n, c, k = 200, 13, 10
    assert estimate_pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), rel=1e-12)
    assert estimate_pass_at_k(1000, 1, 1) == pytest.approx(0.001)


@pytest.mark.parametrize(
    "args, error",
    [((3, 1, 0), ValueError), ((3, 1, -1), ValueError), ((3, 4, 1), ValueError), ((3, -1, 1), ValueError),
     ((0, 0, 1), ValueError), ((3, 1, 4), ValueError), ((3.0, 1, 1), TypeError), ((3, 1, True), TypeError)],
)
def test_estimator_refuses_bad_counts(args, error):
    with pytest.raises(error):
        estimate_pass_at_k(*args)


def test_benchmark_mean_and_skipped_k_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = pass_at_k([2, 2, 4], [1, 0, 4], [1, 2, 3])
    assert scores == pytest.approx({"pass@1": (0.5 + 0.0 + 1.0) / 3, "pass@2": (1.0 + 0.0 + 1.0) / 3})
    assert "pass@3" not in scores
    assert len(caught) == 1 and "pass@3 skipped" in str(caught[0].message)


def test_bad_arguments():
    with pytest.raises(ValueError, match="one entry per problem"):
        pass_at_k([1, 2], [1], [1])
    with pytest.raises(ValueError, match="at least one problem"):
        pass_at_k([], [], [1])
    with pytest.raises(ValueError, match=">= 1"):
        check_ks([1, 0])
    with pytest.raises(TypeError, match="int"):
        check_ks([1.5])
    assert check_ks(3) == [3]
