"""The CCS expected under exchangeable sides, the gap to it, and the paired pass-rate test: definitions checked
by enumeration, statistical behaviour by simulation with known true effects."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from procure_trl.metrics.ccs import GAP_KEYS, concept_consistency_score, row_pair_counts
from procure_trl.metrics.ccs_gap import (
    EXACT_SIGN_FLIP_ROWS,
    ccs_expected,
    expected_pair_counts,
    pair_counts,
    sign_flip_p_value,
)


def enumerated_expectation(reference: list[int], counterfactual: list[int]) -> tuple[float, float]:
    """Mean (consistent, valid) pairs over every way of dealing the row's outcomes to the two sides."""
    outcomes = reference + counterfactual
    n = len(reference)
    totals, deals = np.zeros(2), 0
    for positions in itertools.combinations(range(len(outcomes)), n):
        chosen = set(positions)
        ref = [outcomes[i] for i in chosen]
        cf = [outcomes[i] for i in range(len(outcomes)) if i not in chosen]
        totals += row_pair_counts(cf, ref)
        deals += 1
    return totals[0] / deals, totals[1] / deals


@pytest.mark.parametrize("seed", range(4))
def test_expected_pairs_equal_enumeration_of_all_shuffles(seed):
    rng = np.random.default_rng(seed)
    for _ in range(15):
        ref = rng.integers(0, 2, size=rng.integers(1, 6)).tolist()
        cf = rng.integers(0, 2, size=rng.integers(1, 6)).tolist()
        consistent, valid = expected_pair_counts(np.array([sum(ref)]), np.array([len(ref)]),
                                                 np.array([sum(cf)]), np.array([len(cf)]))
        want = enumerated_expectation(ref, cf)
        assert consistent[0] == pytest.approx(want[0]) and valid[0] == pytest.approx(want[1]), (ref, cf)


def test_one_completion_per_side_makes_the_gap_zero():
    # A single outcome per side: any shuffle leaves the pair counts as they are, so nothing can be separated.
    rng = np.random.default_rng(3)
    preds = rng.integers(0, 2, size=(50, 1)).tolist()
    refs = rng.integers(0, 2, size=(50, 1)).tolist()
    out = concept_consistency_score(preds, refs, n_bootstrap=0, n_permutations=0)
    assert out["ccs_expected"] == pytest.approx(out["ccs"])
    assert out["ccs_gap"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_raw_ccs_tracks_pass_rate_and_the_gap_does_not(p):
    rng = np.random.default_rng(int(p * 10))
    refs = (rng.random((4000, 5)) < p).astype(int).tolist()
    preds = (rng.random((4000, 5)) < p).astype(int).tolist()
    out = concept_consistency_score(preds, refs, n_bootstrap=0, n_permutations=0)
    assert out["ccs"] == pytest.approx(p / (2 - p), abs=0.01)  # the concept-invariant model's raw CCS
    assert out["ccs_expected"] == pytest.approx(p / (2 - p), abs=0.01)
    assert abs(out["ccs_gap"]) < 0.01


def test_clustered_passes_give_a_negative_gap():
    # Every row passes all on one side and nothing on the other: no consistent pair, yet chance expects some.
    refs = [[1] * 4, [0] * 4] * 10
    preds = [[0] * 4, [1] * 4] * 10
    out = concept_consistency_score(preds, refs, n_bootstrap=200, n_permutations=0)
    a, n, b, m = (np.array(x) for x in ([sum(r) for r in refs], [4] * 20, [sum(p) for p in preds], [4] * 20))
    assert out["ccs"] == 0.0
    assert out["ccs_expected"] == pytest.approx(ccs_expected(a, n, b, m)) and out["ccs_expected"] > 0.2
    low, high = out["ccs_gap_ci"]
    assert high < 0 and low <= out["ccs_gap"] <= high
    assert out["pass_gap"] == pytest.approx(0.0)  # the two sides pass equally often overall


def test_pass_gap_sign_interval_and_p_value():
    rng = np.random.default_rng(11)
    refs = (rng.random((200, 5)) < 0.6).astype(int).tolist()
    preds = (rng.random((200, 5)) < 0.3).astype(int).tolist()
    out = concept_consistency_score(preds, refs, n_bootstrap=500, n_permutations=2000)
    rates = np.mean(preds, axis=1) - np.mean(refs, axis=1)
    assert out["pass_gap"] == pytest.approx(float(rates.mean()))
    low, high = out["pass_gap_ci"]
    assert low <= out["pass_gap"] <= high < 0
    assert out["pass_gap_p"] == pytest.approx(1 / 2001)  # no random flip comes near the observed gap


def test_sign_flip_exact_for_few_rows():
    for k in range(1, 6):
        # k equal positive differences: only "all +" and "all -" are as extreme, of 2**k patterns
        assert sign_flip_p_value([0.5] * k) == pytest.approx(2 / 2**k)
    assert sign_flip_p_value([0.0, 0.0]) == 1.0
    assert sign_flip_p_value([]) is None and sign_flip_p_value([1.0], n_permutations=0) is None
    assert sign_flip_p_value([0.2, -0.2, 0.0, 0.4]) == pytest.approx(
        np.mean([abs(s1 * 0.2 - s2 * 0.2 + s3 * 0.4) >= 0.4 - 1e-12
                 for s1, s2, s3 in itertools.product((1, -1), repeat=3)]))


def test_sign_flip_random_patterns_agree_with_enumeration():
    rng = np.random.default_rng(5)
    values = rng.normal(0.1, 0.5, size=EXACT_SIGN_FLIP_ROWS + 3)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=values.size)))
    exact = float(np.mean(np.abs(signs @ values) >= abs(values.sum()) - 1e-9))
    assert sign_flip_p_value(values, n_permutations=20000, seed=1) == pytest.approx(exact, abs=0.015)


def test_sign_flip_rejects_at_its_level_under_the_null():
    rng = np.random.default_rng(8)
    p_values = []
    for _ in range(200):
        a = (rng.random((60, 3)) < 0.4).sum(axis=1)
        b = (rng.random((60, 3)) < 0.4).sum(axis=1)
        p_values.append(sign_flip_p_value((b - a) / 3, n_permutations=500, seed=int(rng.integers(1 << 30))))
    assert np.mean(np.array(p_values) < 0.05) <= 0.09


def test_per_concept_gap_keys_and_seeding():
    rng = np.random.default_rng(2)
    refs = (rng.random((40, 4)) < 0.7).astype(int).tolist()
    preds = (rng.random((40, 4)) < 0.4).astype(int).tolist()
    concepts = ["if_else_flip", "name_random"] * 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = concept_consistency_score(preds, refs, concepts=concepts, n_bootstrap=300, n_permutations=300, seed=4)
    again = concept_consistency_score(preds, refs, concepts=concepts, n_bootstrap=300, n_permutations=300, seed=4)
    assert out == again
    for key in GAP_KEYS:
        assert key in out and set(out[f"{key}_per_concept"]) == {"if_else_flip", "name_random"}
    alone = concept_consistency_score(preds[::2], refs[::2], n_bootstrap=0, n_permutations=0)
    assert out["ccs_gap_per_concept"]["if_else_flip"] == pytest.approx(alone["ccs_gap"])
    assert out["ccs_expected_per_concept"]["if_else_flip"] == pytest.approx(alone["ccs_expected"])


def test_no_valid_pair_leaves_the_gap_undefined():
    with pytest.warns(RuntimeWarning):
        out = concept_consistency_score([[0, 0]], [[0]], n_bootstrap=50)
    assert out["ccs_expected"] is None and out["ccs_gap"] is None and out["ccs_gap_ci"] is None
    assert out["pass_gap"] == 0.0 and out["pass_gap_p"] == 1.0


def test_bad_permutation_count_is_refused():
    with pytest.raises(ValueError, match="n_permutations"):
        concept_consistency_score([[1]], [[1]], n_permutations=-1)


def test_pair_counts_match_the_row_shortcut():
    rng = np.random.default_rng(9)
    for _ in range(20):
        ref = rng.integers(0, 2, size=rng.integers(1, 6)).tolist()
        cf = rng.integers(0, 2, size=rng.integers(1, 6)).tolist()
        c, v = pair_counts(np.array([sum(ref)]), np.array([len(ref)]), np.array([sum(cf)]), np.array([len(cf)]))
        assert (c[0], v[0]) == row_pair_counts(cf, ref)
