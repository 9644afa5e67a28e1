"""The ``evaluate`` modules are thin wrappers: the same numbers as the package's functions, from every place
they load from (the package folder, the repository's ``evaluation/metrics``, a metric Space on a loopback Hub)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import LoopbackHub  # noqa: E402

from procure_trl.metrics import METRIC_MODULES, module_path
from procure_trl.metrics.ccs import concept_consistency_score
from procure_trl.metrics.functional_correctness import execute_candidates, score_candidates
from procure_trl.metrics.pass_at_k import pass_at_k

ROOT = Path(__file__).resolve().parent.parent

# One input for every loader. CCS rows of uneven lengths and three concepts; pass@k candidates that pass,
# fail an assert, raise, and loop past the timeout.
_rng = np.random.default_rng(7)
CCS_INPUT = {
    "predictions": [[int(v) for v in _rng.integers(0, 2, size=int(_rng.integers(1, 6)))] for _ in range(30)],
    "references": [[int(v) for v in _rng.integers(0, 2, size=int(_rng.integers(1, 6)))] for _ in range(30)],
    "concepts": [("if_else_flip", "name_random", "def_use_break")[i % 3] for i in range(30)],
    "n_bootstrap": 300,
    "seed": 3,
}
PASS_AT_K_INPUT = {
    "predictions": [
        ["def add(a, b): return a + b", "def add(a, b): return a - b", "def add(a, b): raise KeyError(a)"],
        ["def inc(x):\n    while True: pass", "def inc(x): return x + 1", "def inc(x): return x + 1"],
    ],
    "references": ["assert add(2, 3) == 5", "assert inc(1) == 2"],
    "k": [1, 2],
    "timeout": 1.0,
    "num_workers": 2,
}

LOAD_AND_COMPUTE = r"""
import json, os, sys
import evaluate
where, inputs_path, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
inputs = json.load(open(inputs_path))
ccs = evaluate.load(where.format(name="ccs")).compute(**inputs["ccs"])
scores, results = evaluate.load(where.format(name="pass_at_k")).compute(**inputs["pass_at_k"])
passed = {str(t): [r["passed"] for _, r in sorted(v)] for t, v in results.items()}
json.dump({"ccs": ccs, "pass_at_k": scores, "passed": passed}, open(out_path, "w"))
"""


@pytest.fixture
def allow_code_eval(monkeypatch):
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")


def _as_json(value):
    return json.loads(json.dumps(value))  # tuples -> lists, as after a round trip through a subprocess


def _expected():
    outcomes = execute_candidates(
        PASS_AT_K_INPUT["predictions"], PASS_AT_K_INPUT["references"], num_workers=2, timeout=1.0
    )
    return {
        "ccs": _as_json(concept_consistency_score(**CCS_INPUT)),
        "pass_at_k": score_candidates(outcomes, PASS_AT_K_INPUT["k"]),
        "passed": {str(t): [o.passed for o in task] for t, task in enumerate(outcomes)},
    }


def test_expected_values_are_what_the_input_says(allow_code_eval):
    # The reference numbers themselves: candidate verdicts by hand, pass@k from the estimator.
    expected = _expected()
    assert expected["passed"] == {"0": [True, False, False], "1": [False, True, True]}
    assert expected["pass_at_k"] == pytest.approx(pass_at_k([3, 3], [1, 2], [1, 2]))
    assert expected["pass_at_k"]["pass@1"] == pytest.approx(0.5)
    assert expected["ccs"]["rows"] == 30 and expected["ccs"]["ccs_ci"] is not None


def test_repository_folders_are_the_packaged_modules():
    # One copy of each module: evaluation/metrics/<name> is the package folder, not a second file.
    for name in METRIC_MODULES:
        repo_folder = ROOT / "evaluation" / "metrics" / name
        assert repo_folder.resolve() == Path(module_path(name)).resolve()
        assert (Path(module_path(name)) / "README.md").is_file()


def test_module_path_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown metric module 'code_eval'.*pass_at_k, ccs"):
        module_path("code_eval")


@pytest.mark.parametrize("where", ["package", "repository"])
def test_local_modules_equal_the_functions(where, allow_code_eval):
    import evaluate

    def path(name):
        return module_path(name) if where == "package" else str(ROOT / "evaluation" / "metrics" / name)

    expected = _expected()
    assert _as_json(evaluate.load(path("ccs")).compute(**CCS_INPUT)) == expected["ccs"]
    scores, results = evaluate.load(path("pass_at_k")).compute(**PASS_AT_K_INPUT)
    assert scores == expected["pass_at_k"]
    assert {str(t): [r["passed"] for _, r in sorted(v)] for t, v in results.items()} == expected["passed"]
    assert results[1][0][1]["result"] == "timed out" and results[0][2][1]["result"].startswith("failed: KeyError")


def _client_env(hub: LoopbackHub, home: Path) -> dict[str, str]:
    env = {**os.environ, **hub.client_env(HF_HOME=str(home), HF_EVALUATE_OFFLINE="0")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_ALLOW_CODE_EVAL"] = "1"
    return env


@pytest.mark.slow
def test_spaces_on_a_loopback_hub_equal_the_functions(tmp_path, allow_code_eval):
    """`procure publish-metrics` creates the Spaces; `evaluate.load("tester/<name>")` downloads and runs them."""
    with LoopbackHub() as hub:
        publish = subprocess.run(
            [sys.executable, "-m", "procure_trl.cli", "publish-metrics", "--namespace", "tester"],
            env=_client_env(hub, tmp_path / "home-publish"), cwd=tmp_path, capture_output=True, text=True,
            timeout=300,
        )
        assert publish.returncode == 0, publish.stderr[-4000:]
        assert 'evaluate.load("tester/ccs")' in publish.stdout
        for name in METRIC_MODULES:
            files = hub.files(f"tester/{name}", repo_type="space")
            assert files[f"{name}.py"] == (Path(module_path(name)) / f"{name}.py").read_bytes()
            assert {"README.md", "app.py", "requirements.txt"} <= set(files)
            assert b"sdk: gradio" in files["README.md"]

        inputs = tmp_path / "inputs.json"
        inputs.write_text(json.dumps({"ccs": CCS_INPUT, "pass_at_k": PASS_AT_K_INPUT}))
        out = tmp_path / "out.json"
        load = subprocess.run(
            [sys.executable, "-c", LOAD_AND_COMPUTE, "tester/{name}", str(inputs), str(out)],
            env=_client_env(hub, tmp_path / "home-load"), cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
        assert load.returncode == 0, load.stderr[-4000:]
        fetched = [path for method, path, status in hub.state.requests if method == "GET" and status == 200]
        assert any(p.startswith("/spaces/tester/ccs/resolve/") for p in fetched)
        assert any(p.startswith("/spaces/tester/pass_at_k/resolve/") for p in fetched)
    assert json.loads(out.read_text()) == _expected()


def test_publish_refuses_a_bad_namespace(capsys):
    from procure_trl.cli import main

    assert main(["publish-metrics", "--namespace", "a/b"]) == 2
    assert "namespace='a/b'" in capsys.readouterr().err
