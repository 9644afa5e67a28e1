"""Problems, a renaming reply and the command line of the LLM-generator CLI tests (a loopback endpoint answers)."""

from __future__ import annotations

import json
from pathlib import Path

from openai_server import fenced, task_program

from procure_trl.problems import Problem


def scale_problem(i: int) -> Problem:
    prompt = f'def scale{i}(values, k):\n    """Multiply each value by k."""\n'
    solution = "    out = []\n    for v in values:\n        out.append(v * k)\n    return out\n"
    tests = f"assert scale{i}([1, 2], 3) == [3, 6]\nassert scale{i}([], 2) == []\n"
    return Problem(f"Test/scale{i}", prompt, solution, tests, f"scale{i}")


def renamed(program: str) -> str:
    """A correct name_random answer for a scale problem: ``out`` renamed to a fresh name."""
    return program.replace("out", "r_x1")


def rename_reply(body: dict) -> str:
    return fenced(renamed(task_program(body)))


def write_problems(path: Path, n: int) -> list[Problem]:
    problems = [scale_problem(i) for i in range(n)]
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in problems))
    return problems


def cli_args(problems_path, out, url, cache, *extra) -> list[str]:
    return [
        "perturb", str(problems_path), "--output", str(out), "--concepts", "name_random",
        "--generator", "llm", "--model", "test-model", "--base-url", url, "--cache-dir", str(cache),
        "--max-concurrency", "2", "--request-timeout", "30", "--num-workers", "1", "--no-progress", *extra,
    ]
