"""Program-aware truncation keeps the code a program needs and drops what follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from procure_trl.evaluation.truncation import strip_fences, truncate_completion

CODECONTESTS_FIXTURE = Path(__file__).parent / "fixtures" / "code_contests_sample.jsonl"


@pytest.fixture(scope="module")
def all_reference_problems():
    """HumanEval, MBPP (the full set where the tests have it) and the CodeContests fixture."""
    from procure_trl.problems import load_codecontests, load_problems

    return load_problems("humaneval") + load_problems("mbpp") + load_codecontests(data_file=CODECONTESTS_FIXTURE)

MBPP_PROMPT = "# Write a function to find the minimum cost path.\n# assert min_cost([[1]], 0, 0) == 1\n"
MBPP_SOLUTION = "R = 3\nC = 3\ndef min_cost(cost, m, n):\n    return cost[m][n] + R - C\n"


def test_globals_before_the_entry_point_are_kept_and_calls_after_it_dropped():
    junk = "\nprint(min_cost([[1]], 0, 0))\nassert min_cost([[1]], 0, 0) == 1\nif __name__ == '__main__':\n    main()\n"
    assert truncate_completion(MBPP_PROMPT, MBPP_SOLUTION + junk, "min_cost") == MBPP_SOLUTION + "\n"


def test_helpers_after_the_entry_point_are_kept():
    completion = "def f(x):\n    return g(x)\n\nprint(f(1))\n\ndef g(x):\n    return x + 1\n\nf(2)\n"
    kept = truncate_completion("", completion, "f")
    assert kept == "def f(x):\n    return g(x)\n\ndef g(x):\n    return x + 1\n\n"
    namespace: dict = {}
    exec(kept, namespace)
    assert namespace["f"](1) == 2


def test_code_before_the_entry_point_is_kept_whatever_it_is():
    completion = "TABLE = []\nfor i in range(3):\n    TABLE.append(i * i)\ndef f(i):\n    return TABLE[i]\nf(1)\n"
    assert truncate_completion("", completion, "f") == completion[: completion.index("f(1)")]


def test_a_completion_inside_the_function_keeps_its_body():
    prefix = "def f(x):\n    if x > 0:\n"
    completion = "        return 1\n    return 0\n\n\nassert f(1) == 1\nx = f(2)\n"
    assert truncate_completion(prefix, completion, "f") == "        return 1\n    return 0\n\n\nx = f(2)\n"


def test_a_last_statement_cut_short_is_dropped():
    completion = "def f(x):\n    return x\n\ndef g(y):\n    return (y +"
    assert truncate_completion("", completion, "f") == "def f(x):\n    return x\n\n"


def test_a_program_that_never_parses_is_kept_as_written():
    assert truncate_completion("def f(:\n", "    return 1\n", "f") == "    return 1\n"


@pytest.mark.parametrize("text,expected", [
    ("```python\ndef f():\n    return 1\n```\nThis returns 1.\n", "def f():\n    return 1\n"),
    ("def f():\n    return 1\n```\n", "def f():\n    return 1\n"),
    ("def f():\n    return 1\n", "def f():\n    return 1\n"),
])
def test_fences(text, expected):
    assert strip_fences(text) == expected
    assert truncate_completion("", text, "f") == expected


def test_decorated_definitions_keep_their_decorators():
    completion = "def f():\n    return h()\n\n@staticmethod\ndef h():\n    return 1\n"
    assert truncate_completion("", completion, "f") == completion


def test_every_reference_solution_is_kept_whole_with_or_without_trailing_calls(all_reference_problems):
    junk = "\n\nprint({entry}(1))\nassert {entry}(2) is not None\nif __name__ == '__main__':\n    {entry}(3)\n"
    for problem in all_reference_problems:
        assert truncate_completion(problem.prompt, problem.solution, problem.entry_point) == problem.solution, (
            problem.task_id)
        noisy = problem.solution + junk.format(entry=problem.entry_point)
        assert truncate_completion(problem.prompt, noisy, problem.entry_point).rstrip("\n") == (
            problem.solution.rstrip("\n")), problem.task_id
