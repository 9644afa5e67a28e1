"""The `evaluate` wrapper around the CCS estimator, loaded offline from its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

METRIC_DIR = Path(__file__).resolve().parents[1] / "evaluation" / "metrics" / "ccs"


@pytest.fixture(scope="module")
def ccs_metric():
    import evaluate

    return evaluate.load(str(METRIC_DIR))


def test_loads_offline_and_matches_hand_computed(ccs_metric):
    out = ccs_metric.compute(
        predictions=[[1, 0], [1, 1], [0, 0]],
        references=[[1, 1, 0], [1, 1], [0]],
        concepts=["if_else_flip", "name_random", "name_random"],
        n_bootstrap=200,
    )
    # row0: 2 consistent / 5 valid; row1: 4/4; row2: nothing valid
    assert (out["consistent_pairs"], out["valid_pairs"]) == (6, 9)
    assert out["ccs"] == pytest.approx(6 / 9)
    assert out["ccs_per_concept"] == {"if_else_flip": pytest.approx(0.4), "name_random": 1.0}
    low, high = out["ccs_ci"]
    assert low <= out["ccs"] <= high


def test_kwargs_reach_the_estimator(ccs_metric):
    a = ccs_metric.compute(predictions=[[1, 0]] * 4 + [[1]], references=[[1]] * 5, n_bootstrap=0)
    assert a["ccs_ci"] is None and a["ccs_per_concept"] == {}


def test_module_returns_the_gap_statistics_of_the_estimator(ccs_metric):
    from procure_trl.metrics.ccs import GAP_KEYS, concept_consistency_score

    preds = [[1, 0, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]]
    refs = [[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]]
    concepts = ["if_else_flip", "if_else_flip", "name_random", "name_random"]
    kwargs = dict(concepts=concepts, n_bootstrap=100, seed=3, n_permutations=50)
    out = ccs_metric.compute(predictions=preds, references=refs, **kwargs)
    direct = concept_consistency_score(preds, refs, **kwargs)
    for key in GAP_KEYS:
        assert out[key] == direct[key] and out[f"{key}_per_concept"] == direct[f"{key}_per_concept"], key
    assert out["pass_gap"] < 0 and out["ccs_gap"] < 0
    assert ccs_metric.compute(predictions=preds, references=refs, n_permutations=0)["pass_gap_p"] is None


def test_no_valid_pair_is_none_not_nan(ccs_metric):
    with pytest.warns(RuntimeWarning):
        out = ccs_metric.compute(predictions=[[0]], references=[[0, 0]])
    assert out["ccs"] is None


@pytest.mark.parametrize(
    "preds, refs, kwargs, match",
    [
        ([[1], [1]], [[1]], {}, "Mismatch in the number of predictions"),
        ([[1.5]], [[1]], {}, r"predictions\[0\]\[0\] = 1.5"),
        ([[2]], [[1]], {}, r"predictions\[0\]\[0\] = 2"),
        ([[1]], [[]], {}, r"references\[0\] is empty"),
        ([[1]], [[1]], {"concepts": []}, "concepts has 0 entries"),
    ],
)
def test_bad_input(ccs_metric, preds, refs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ccs_metric.compute(predictions=preds, references=refs, **kwargs)


PAPER_TITLE = "Strengthening Programming Comprehension in Large Language Models through Code Generation"


def test_card_and_citation_name_the_paper_implemented(ccs_metric):
    card = (METRIC_DIR / "README.md").read_text(encoding="utf-8")
    for where, text in (("_CITATION", ccs_metric.citation), ("metric card", card)):
        assert PAPER_TITLE in " ".join(text.split()), f"{where} does not name the paper"
        assert "2508.12620" in text, f"{where} does not give the arXiv id"
