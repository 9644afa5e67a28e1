"""The `evaluate` module evaluation/metrics/pass_at_k: offline loading, code_eval-shaped output, argument checks."""

from __future__ import annotations

import os
import pathlib

import evaluate
import pytest

METRIC_DIR = str(pathlib.Path(__file__).resolve().parents[1] / "evaluation" / "metrics" / "pass_at_k")


@pytest.fixture(scope="module")
def metric():
    assert os.environ.get("HF_EVALUATE_OFFLINE") == "1" and os.environ.get("HF_HUB_OFFLINE") == "1"
    return evaluate.load(METRIC_DIR)


@pytest.fixture
def allow_code_eval(monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")


def test_scores_and_results_shape(metric, allow_code_eval):
    references = ["assert add(2, 3) == 5", "assert inc(1) == 2"]
    predictions = [
        ["def add(a, b): return a * b", "def add(a, b): return a + b"],
        ["def inc(x): return x + 1", "def inc(x):\n    while True: pass", "def inc(x): return x"],
    ]
    scores, results = metric.compute(
        predictions=predictions, references=references, k=[1, 2], num_workers=2, timeout=1.0
    )
    assert scores["pass@1"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert scores["pass@2"] == pytest.approx((1.0 + (1 - 1 / 3)) / 2)
    assert sorted(results) == [0, 1]
    assert [cid for cid, _ in results[1]] == [0, 1, 2]
    first = dict(results[0])
    assert first[0]["passed"] is False and first[0]["result"].startswith("failed: AssertionError")
    assert first[1] == {"task_id": 0, "passed": True, "result": "passed", "completion_id": 1}
    assert dict(results[1])[1]["result"] == "timed out"


def test_k_larger_than_candidates_is_skipped_with_warning(metric, allow_code_eval):
    with pytest.warns(UserWarning, match="pass@10 skipped"):
        scores, _ = metric.compute(predictions=[["x = 1"]], references=["assert x == 1"], k=[1, 10])
    assert scores == {"pass@1": 1.0}


def test_execution_refused_without_opt_in(metric, monkeypatch):
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    with pytest.raises(ValueError, match="HF_ALLOW_CODE_EVAL"):
        metric.compute(predictions=[["x = 1"]], references=["assert x == 1"], k=[1])


@pytest.mark.parametrize(
    "predictions, references, kwargs, error, match",
    [
        ([["x = 1"], ["x = 2"]], ["assert x"], {}, ValueError, "2 predictions and 1 references"),
        ([["x = 1", 3]], ["assert x"], {}, TypeError, r"predictions\[0\]\[1\]"),
        (["x = 1"], ["assert x"], {}, TypeError, r"predictions\[0\] must be a list"),
        ([["x = 1"]], [None], {}, TypeError, r"references\[0\]"),
        ([["x = 1"]], ["assert x"], {"k": [0]}, ValueError, ">= 1"),
        ([["x = 1"]], ["assert x"], {"k": [-2, 1]}, ValueError, ">= 1"),
        ([["x = 1"]], ["assert x"], {"timeout": 0}, ValueError, "timeout"),
        ([["x = 1"]], ["assert x"], {"timeout": -1.5}, ValueError, "timeout"),
        ([["x = 1"]], ["assert x"], {"num_workers": 0}, ValueError, "num_workers"),
    ],
)
def test_bad_input_is_refused_before_running(metric, allow_code_eval, predictions, references, kwargs, error, match):
    with pytest.raises(error, match=match):
        metric.compute(predictions=predictions, references=references, **kwargs)
