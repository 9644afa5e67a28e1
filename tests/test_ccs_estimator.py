"""The pure CCS / AME estimators against hand-computed examples."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from procure_trl.metrics.ccs import bootstrap_ccs_interval, concept_consistency_score, row_pair_counts


def brute_force_counts(pred, ref):
    """Enumerate every (original, counterfactual) completion pair: the definition, not the shortcut."""
    consistent = valid = 0
    for r, p in itertools.product(ref, pred):
        valid += bool(r or p)
        consistent += bool(r and p)
    return consistent, valid


def test_single_row_by_hand():
    # original: 2 of 3 pass; counterfactual: 1 of 2 passes.
    # 6 pairs; both fail: 1 original fail x 1 cf fail = 1 -> 5 valid; both pass: 2 x 1 = 2.
    out = concept_consistency_score(predictions=[[1, 0]], references=[[1, 1, 0]], n_bootstrap=0)
    assert out["consistent_pairs"] == 2
    assert out["valid_pairs"] == 5
    assert out["ccs"] == pytest.approx(2 / 5)
    assert out["ame"] == pytest.approx(abs(1 / 2 - 2 / 3))
    assert out["ccs_ci"] is None  # n_bootstrap=0


def test_pooled_over_rows_with_all_fail_row():
    preds = [[1, 1], [0, 0], [0, 1]]
    refs = [[1, 0], [0, 0], [1, 1]]
    # row 0: a=1,b=2 -> consistent 2, valid 4 - (1*0)=4
    # row 1: all fail both sides -> 0 consistent, 0 valid, excluded from AME
    # row 2: a=2,b=1 -> consistent 2, valid 4 - 0 = 4
    out = concept_consistency_score(predictions=preds, references=refs, n_bootstrap=0)
    assert (out["consistent_pairs"], out["valid_pairs"]) == (4, 8)
    assert out["ccs"] == pytest.approx(0.5)
    assert out["ame"] == pytest.approx((abs(1.0 - 0.5) + abs(0.5 - 1.0)) / 2)


def test_no_valid_pair_gives_none_and_warns():
    with pytest.warns(RuntimeWarning, match="no valid pair"):
        out = concept_consistency_score(predictions=[[0, 0], [0]], references=[[0], [0, 0, 0]])
    assert out["ccs"] is None and out["ccs_ci"] is None and out["ame"] is None
    assert out["valid_pairs"] == 0


def test_all_pass_is_one_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = concept_consistency_score(predictions=[[1, 1]], references=[[1]], n_bootstrap=50)
    assert out["ccs"] == 1.0 and out["ame"] == 0.0
    assert out["ccs_ci"] == (1.0, 1.0)


def test_per_concept_split():
    preds = [[1, 0], [1, 1], [0, 0]]
    refs = [[1, 1], [1, 1], [1, 0]]
    concepts = ["if_else_flip", "name_random", "if_else_flip"]
    out = concept_consistency_score(preds, refs, concepts=concepts, n_bootstrap=0)
    # if_else_flip: row0 consistent 2 valid 4; row2 a=1,b=0 -> consistent 0, valid 4-2=2
    assert out["ccs_per_concept"]["if_else_flip"] == pytest.approx(2 / 6)
    assert out["ccs_per_concept"]["name_random"] == 1.0
    assert out["pairs_per_concept"]["if_else_flip"] == {"consistent": 2, "valid": 6, "rows": 2}
    assert list(out["ccs_per_concept"]) == ["if_else_flip", "name_random"]  # order of first appearance
    assert out["ccs"] == pytest.approx((2 + 4) / (6 + 4))


def test_per_concept_none_when_that_concept_has_no_valid_pair():
    with pytest.warns(RuntimeWarning):
        out = concept_consistency_score([[0]], [[0]], concepts=["name_shuffle"], n_bootstrap=0)
    assert out["ccs_per_concept"] == {"name_shuffle": None}


@pytest.mark.parametrize("seed", range(5))
def test_shortcut_counts_match_enumeration(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        ref = rng.integers(0, 2, size=rng.integers(1, 6)).tolist()
        pred = rng.integers(0, 2, size=rng.integers(1, 6)).tolist()
        assert row_pair_counts(pred, ref) == brute_force_counts(pred, ref)


def _random_rows(rng, n_rows, p_ref=0.7, p_pred=0.5, n=5):
    refs = (rng.random((n_rows, n)) < p_ref).astype(int).tolist()
    preds = (rng.random((n_rows, n)) < p_pred).astype(int).tolist()
    return preds, refs


@pytest.mark.parametrize("n_rows", [5, 20, 80])
def test_interval_contains_point_estimate(n_rows):
    preds, refs = _random_rows(np.random.default_rng(n_rows), n_rows)
    out = concept_consistency_score(preds, refs, n_bootstrap=500, seed=1)
    low, high = out["ccs_ci"]
    assert low <= out["ccs"] <= high
    assert low < high


def test_interval_narrows_as_rows_grow():
    # The mean width over several data sets per size: one small data set can happen to be homogeneous.
    widths = []
    for n_rows in (10, 40, 160, 640):
        width = 0.0
        for data_seed in range(8):
            preds, refs = _random_rows(np.random.default_rng(data_seed), n_rows)
            low, high = concept_consistency_score(preds, refs, n_bootstrap=400, n_permutations=0)["ccs_ci"]
            width += (high - low) / 8
        widths.append(width)
    assert all(a > b for a, b in zip(widths, widths[1:])), widths
    assert widths[-1] < widths[0] / 4  # ~ 1/sqrt(rows): 64x the rows, ~8x narrower


def test_interval_is_seeded_and_confidence_widens():
    preds, refs = _random_rows(np.random.default_rng(3), 30)
    a = concept_consistency_score(preds, refs, seed=5)["ccs_ci"]
    b = concept_consistency_score(preds, refs, seed=5)["ccs_ci"]
    assert a == b
    lo90, hi90 = concept_consistency_score(preds, refs, confidence=0.8, seed=5)["ccs_ci"]
    assert hi90 - lo90 < a[1] - a[0]


def test_bootstrap_skips_resamples_without_valid_pairs():
    # One informative row among all-fail rows: many resamples miss it, and those must not count as 0.
    consistent = [1] + [0] * 9
    valid = [1] + [0] * 9
    assert bootstrap_ccs_interval(consistent, valid, n_bootstrap=200) == (1.0, 1.0)


@pytest.mark.parametrize(
    "preds, refs, kwargs, match",
    [
        ([[1]], [[1], [0]], {}, "predictions has 1 rows but references has 2"),
        ([], [], {}, "no rows"),
        ([[1, 2]], [[1]], {}, r"predictions\[0\]\[1\] = 2"),
        ([[1]], [[0.5]], {}, r"references\[0\]\[0\] = 0.5"),
        ([[1]], [["1"]], {}, r"references\[0\]\[0\]"),
        ([[1], []], [[1], [1]], {}, r"predictions\[1\] is empty"),
        ([[1]], [[1]], {"concepts": ["a", "b"]}, "concepts has 2 entries but there are 1 rows"),
        ([[1]], [[1]], {"confidence": 95}, "confidence"),
        ([[1]], [[1]], {"n_bootstrap": -1}, "n_bootstrap"),
        ([[1]], ["1"], {}, r"references\[0\] must be a list"),
    ],
)
def test_bad_input_is_a_clear_error(preds, refs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        concept_consistency_score(preds, refs, **kwargs)


def test_accepts_bools_and_numpy():
    out = concept_consistency_score(np.array([[True, False]]), [np.array([1, 1])], n_bootstrap=0)
    assert out["ccs"] == pytest.approx(2 / 4)
