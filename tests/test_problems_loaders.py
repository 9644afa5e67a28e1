"""Loaders: HumanEval, MBPP (full/sanitized), CodeContests (Hub schema fixture), JSONL, dispatch."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import datasets
import pytest
from mbpp_data import FIXTURE_MBPP_DIR, requires_full_mbpp

from procure_trl.problems import (
    InvalidProblem,
    Problem,
    codecontests_problem,
    load_codecontests,
    load_humaneval,
    load_jsonl,
    load_mbpp,
    load_problems,
    read_jsonl,
    write_jsonl,
)

FIXTURE = Path(__file__).parent / "fixtures" / "code_contests_sample.jsonl"


def _run(program: str, tests: str) -> None:
    """Execute program then tests in one namespace (in-process: these are our own trusted fixtures)."""
    namespace: dict = {"__name__": "__procure_test__"}
    exec(compile(program + "\n" + tests, "<problem>", "exec"), namespace)


def test_humaneval_has_164_problems_whose_reference_passes():
    problems = load_humaneval()
    assert len(problems) == 164
    first = problems[0]
    assert first.task_id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert first.tests.rstrip().endswith("check(has_close_elements)")
    for problem in problems[:5]:
        ast.parse(problem.program)
        _run(problem.program, problem.tests)


def test_humaneval_tests_catch_a_wrong_solution():
    problem = load_humaneval()[0]
    wrong = problem.prompt + "    return False\n"
    with pytest.raises(AssertionError):
        _run(wrong, problem.tests)


def test_mbpp_format_on_the_fixture_rows():
    full = load_mbpp(data_dir=FIXTURE_MBPP_DIR)
    sanitized = load_mbpp(data_dir=FIXTURE_MBPP_DIR, sanitized=True)
    assert len(full) == 15 and len(sanitized) == 10
    first = full[0]
    assert first.task_id == "MBPP/1" and first.entry_point == "min_cost"
    assert "\r" not in first.program and "\r" not in first.tests
    assert all(line.startswith("#") for line in first.prompt.splitlines())
    for problem in full + sanitized:
        assert problem.entry_point in problem.tests, problem.task_id
        _run(problem.program, problem.tests)


@requires_full_mbpp
def test_mbpp_full_and_sanitized_counts_and_format():
    full = load_mbpp()
    sanitized = load_mbpp(sanitized=True)
    assert len(full) == 974 and len(sanitized) == 427
    assert len(load_mbpp(split="test")) == 500
    first = full[0]
    assert first.task_id == "MBPP/1" and first.entry_point == "min_cost"
    assert "\r" not in first.program and "\r" not in first.tests
    # the prompt is comments only: task text and the asserts, and prompt + solution is the program
    assert all(line.startswith("#") for line in first.prompt.splitlines())
    assert "assert min_cost(" in first.prompt
    _run(first.program, first.tests)
    for problem in full + sanitized:
        assert problem.entry_point in problem.tests, problem.task_id


def test_mbpp_setup_code_lands_in_tests():
    sanitized = {p.task_id: p for p in load_mbpp(sanitized=True)}
    with_imports = [p for p in sanitized.values() if p.tests.startswith("import")]
    assert with_imports, "sanitized MBPP has rows with test_imports"
    _run(with_imports[0].program, with_imports[0].tests)


def test_mbpp_missing_directory_names_the_path_and_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("PROCURE_MBPP_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as err:
        load_mbpp()
    assert "nowhere" in str(err.value) and "PROCURE_MBPP_DIR" in str(err.value)


def test_mbpp_env_var_override(tmp_path, monkeypatch):
    row = {"text": "Add two numbers.", "code": "def add(a, b):\r\n  return a + b", "task_id": 7,
           "test_setup_code": "", "test_list": ["assert add(1, 2) == 3"], "challenge_test_list": []}
    (tmp_path / "mbpp.jsonl").write_text(json.dumps(row) + "\n")
    monkeypatch.setenv("PROCURE_MBPP_DIR", str(tmp_path))
    (problem,) = load_mbpp()
    assert problem == Problem("MBPP/7", "# Add two numbers.\n# Your code should pass these tests:\n"
                              "# assert add(1, 2) == 3\n", "def add(a, b):\n  return a + b\n",
                              "assert add(1, 2) == 3\n", "add")


def test_mbpp_unknown_split():
    with pytest.raises(ValueError, match="unknown MBPP split 'dev'"):
        load_mbpp(split="dev")


def test_codecontests_fixture_wraps_stdin_stdout_solutions():
    problems = load_codecontests(data_file=FIXTURE)
    names = [p.task_id for p in problems]
    # D has no Python 3 solution (only C++ and Python 2): skipped
    assert names == ["CodeContests/1000_A. Sum of Pairs", "CodeContests/1000_B. Even or Odd Count",
                     "CodeContests/1000_C. Largest Gap", "CodeContests/1000_E. Count Distinct"]
    for problem in problems:
        assert problem.entry_point == "main" and problem.prompt.endswith("def main():\n")
        assert problem.solution.startswith("    ")
        _run(problem.program, problem.tests)
    # B's first Python 3 solution reads fd 0 directly (escapes the redirection): the second one is used
    assert "open(0)" not in problems[1].solution and "readline" in problems[1].solution


def test_codecontests_tests_reject_a_wrong_solution_and_name_the_case():
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    row = rows[0]
    row = dict(row, solutions={"language": row["incorrect_solutions"]["language"],
                               "solution": row["incorrect_solutions"]["solution"]})
    problem = codecontests_problem(row)
    with pytest.raises(AssertionError, match="test case 0"):
        _run(problem.program, problem.tests)


def test_codecontests_max_tests_and_missing_python3():
    row = json.loads(FIXTURE.read_text().splitlines()[0])
    assert codecontests_problem(row, max_tests=1).tests.count("Sum") == 0  # harness holds the cases only
    assert "'1\\n-5 5\\n'" not in codecontests_problem(row, max_tests=1).tests
    assert "'1\\n-5 5\\n'" in codecontests_problem(row, max_tests=None).tests
    row["solutions"] = {"language": [2], "solution": ["int main(){}"]}
    with pytest.raises(ValueError, match="no Python 3 solution"):
        codecontests_problem(row, where="row 0")


def test_codecontests_env_var_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PROCURE_CODECONTESTS_FILE", str(FIXTURE))
    assert len(load_problems("codecontests")) == 4
    monkeypatch.setenv("PROCURE_CODECONTESTS_FILE", str(tmp_path / "missing.jsonl"))
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_codecontests()


def test_jsonl_roundtrip_and_dispatch(tmp_path):
    problems = load_humaneval()[:3]
    path = tmp_path / "p.jsonl"
    write_jsonl(problems, path)
    assert load_jsonl(path) == problems
    assert load_problems(str(path)) == problems
    assert load_problems("mbpp-sanitized") == load_mbpp(sanitized=True)
    with pytest.raises(ValueError, match="unknown problem source 'apps'"):
        load_problems("apps")


def test_read_jsonl_keeps_bad_rows_with_where_and_fix(tmp_path):
    good = {"task_id": "t/1", "prompt": "def f():\n", "solution": "    return 1\n", "tests": "assert f() == 1\n",
            "entry_point": "f"}
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([
        json.dumps(good),
        "{not json",
        json.dumps({"task_id": "t/2", "prompt": "x"}),
        json.dumps(dict(good, tests=3)),
        "",
        json.dumps(good),
        json.dumps(dict(good, task_id="t/3", entry_point=" ")),
    ]) + "\n")
    rows = read_jsonl(path)
    assert isinstance(rows[0], Problem)
    bad = rows[1:]
    assert all(isinstance(r, InvalidProblem) for r in bad) and len(bad) == 5
    assert bad[4].task_id == "t/3" and "must not be empty" in bad[4].reason
    assert bad[0].where.endswith("mixed.jsonl:2") and "not valid JSON" in bad[0].reason
    assert bad[1].task_id == "t/2" and "missing field(s) solution, tests, entry_point" in bad[1].reason
    assert "must be strings" in bad[2].reason
    assert bad[3].where.endswith(":6") and "duplicate task_id 't/1'" in bad[3].reason
    with pytest.raises(ValueError, match="mixed.jsonl:2"):
        load_jsonl(path)


def test_mbpp_missing_folder_is_reported_as_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MBPP folder '.*nowhere' \(from data_dir= or \$PROCURE_MBPP_DIR\) "
                                                r"does not exist"):
        load_mbpp(tmp_path / "nowhere")


def test_mbpp_offline_without_a_local_copy_says_how_to_use_one(monkeypatch, tmp_path):
    monkeypatch.delenv("PROCURE_MBPP_DIR")
    # an empty datasets cache: another test may have cached MBPP from the loopback Hub under the suite's cache
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"google-research-datasets/mbpp.*set \$PROCURE_MBPP_DIR"):
        load_mbpp()


_PUSH_MBPP = r"""
import json, sys
from datasets import Dataset, DatasetDict
from procure_trl.problems import MBPP_DATASET, MBPP_SPLITS
folder = sys.argv[1]
full = [json.loads(line) for line in open(f"{folder}/mbpp.jsonl") if line.strip()]
sanitized = json.load(open(f"{folder}/sanitized-mbpp.json"))
for config, rows in (("full", full), ("sanitized", sanitized)):
    # the Hub's layout: one split per task-id range, rows in file order
    splits = {name: [r for r in rows if low <= r["task_id"] <= high] for name, (low, high) in MBPP_SPLITS.items()}
    features = Dataset.from_list(rows).features
    DatasetDict({n: Dataset.from_list(r, features=features) for n, r in splits.items() if r}).push_to_hub(
        MBPP_DATASET, config_name=config)
"""

_LOAD_MBPP = r"""
import json, sys
from procure_trl.problems import load_problems
out = {f"{name}:{split}": [p.to_dict() for p in load_problems(name, split=split)]
       for name in ("mbpp", "mbpp-sanitized") for split in (None, "test")}
json.dump(out, open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_mbpp_from_the_hub_equals_the_local_copy(tmp_path):
    """Without $PROCURE_MBPP_DIR, MBPP comes through datasets.load_dataset from its Hub id (a loopback Hub here)."""
    import os
    import subprocess
    import sys

    from hub_server import LoopbackHub

    root = Path(__file__).resolve().parent.parent
    with LoopbackHub() as hub:
        env = {**os.environ, **hub.client_env(HF_HOME=str(tmp_path / "home"))}
        env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("PROCURE_MBPP_DIR")
        for code, arg in ((_PUSH_MBPP, str(FIXTURE_MBPP_DIR)), (_LOAD_MBPP, str(tmp_path / "hub.json"))):
            result = subprocess.run([sys.executable, "-c", code, arg], env=env, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, result.stderr[-4000:]
        assert any(path.startswith("/datasets/google-research-datasets/mbpp/resolve/")
                   for _, path, status in hub.state.requests if status == 200)
    from_hub = json.loads((tmp_path / "hub.json").read_text())
    local = {f"{name}:{split}": [p.to_dict() for p in load_problems(name, split=split, mbpp_dir=FIXTURE_MBPP_DIR)]
             for name in ("mbpp", "mbpp-sanitized") for split in (None, "test")}
    assert [p["task_id"] for p in local["mbpp:None"]] == [f"MBPP/{i}" for i in (*range(1, 13), 66, 82, 367)]
    assert [p["task_id"] for p in local["mbpp-sanitized:test"]] == ["MBPP/11", "MBPP/12", "MBPP/82"]
    assert from_hub == local
