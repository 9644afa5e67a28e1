"""CodeContests: ``deepmind/code_contests`` from the Hub, or a local JSONL file in the Hub's schema; stdin/stdout
problems are wrapped into a ``main()`` function with an I/O checker as their tests."""

from __future__ import annotations

import ast
import json
import os
import re
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

from procure_trl.errors import MissingInputError, UserError, first_line
from procure_trl.hub import require_hub
from procure_trl.problems.problem import Problem, comment_block, normalise_newlines

#: Hub dataset id of CodeContests.
CODECONTESTS_DATASET = "deepmind/code_contests"
#: Environment variable naming a local JSONL file (Hub schema) used instead of the Hub.
CODECONTESTS_FILE_ENV = "PROCURE_CODECONTESTS_FILE"
#: ``solutions.language`` code of Python 3 in the Hub schema (0 unknown, 1 Python 2, 2 C++, 3 Python 3, 4 Java).
PYTHON3 = 3

# Source that would escape the stdin/stdout redirection of the tests, or that cannot live inside a
# function: such solutions are skipped in favour of the next Python 3 solution.
_UNWRAPPABLE = re.compile(r"open\(\s*0|os\.read\(\s*0|fileno\(\)|__name__|^\s*(global|nonlocal)\b|import\s+\*",
                          re.MULTILINE)

_IO_HARNESS = '''\
def _procure_check_io(entry, cases):
    """Run entry() once per (stdin, expected stdout) case; compare whitespace-separated tokens."""
    import io
    import sys

    for index, (given, expected) in enumerate(cases):
        saved = sys.stdin, sys.stdout
        sys.stdin = io.TextIOWrapper(io.BytesIO(given.encode("utf-8")), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        try:
            try:
                entry()
            except SystemExit:
                pass
            sys.stdout.flush()
            got = sys.stdout.buffer.getvalue().decode("utf-8")
        finally:
            sys.stdin, sys.stdout = saved
        if got.split() != expected.split():
            raise AssertionError(
                "test case %d: expected output %r, got %r" % (index, expected[:200], got[:200])
            )
'''


def _io_cases(row: Mapping, max_tests: int | None) -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for key in ("public_tests", "private_tests", "generated_tests"):
        group = row.get(key) or {}
        cases.extend(zip(group.get("input") or [], group.get("output") or []))
    return cases if max_tests is None else cases[:max_tests]


def _wrappable_solution(source: str) -> str | None:
    source = normalise_newlines(source).strip("\n")
    if _UNWRAPPABLE.search(source):
        return None
    body = textwrap.indent(textwrap.dedent(source), "    ") + "\n"
    try:
        ast.parse("def main():\n" + body)
    except SyntaxError:
        return None
    return body


def codecontests_problem(row: Mapping, *, max_tests: int | None = 20, where: str = "row") -> Problem:
    """Turn one row in the ``deepmind/code_contests`` schema into a :class:`Problem`.

    CodeContests problems read stdin and write stdout. In our format:

    * ``prompt``: the description as ``#`` comments, then ``def main():``;
    * ``solution``: the first Python 3 solution (language 3) that can live inside a function, indented
      into ``main()`` (solutions that read file descriptor 0 directly, test ``__name__``, declare
      ``global``/``nonlocal`` or star-import are skipped: wrapped, they would misbehave);
    * ``entry_point``: ``"main"``;
    * ``tests``: a small harness that, per test case (public, then private, then generated, at most
      ``max_tests``), swaps ``sys.stdin``/``sys.stdout`` for in-memory streams, calls ``main()`` and
      compares the whitespace-separated output tokens, raising ``AssertionError`` with the case index.

    Wrapping the solution in a function keeps module-level names local, so renaming and other
    perturbations treat them like any function's variables, and the tests run the program once per case.
    """
    name = row.get("name")
    if not isinstance(name, str) or not name:
        raise UserError(f"{where}: missing 'name'; CodeContests rows need name, description, tests and solutions")
    solutions = row.get("solutions") or {}
    languages = solutions.get("language") or []
    sources = solutions.get("solution") or []
    body = None
    for language, source in zip(languages, sources):
        if int(language) == PYTHON3:
            body = _wrappable_solution(source)
            if body is not None:
                break
    if body is None:
        raise UserError(f"{where} ({name}): no Python 3 solution (language {PYTHON3}) that can be wrapped in main()")
    cases = _io_cases(row, max_tests)
    if not cases:
        raise UserError(f"{where} ({name}): no test cases in public_tests/private_tests/generated_tests")
    description = normalise_newlines(row.get("description") or "")
    tests = _IO_HARNESS + "\n\n_procure_check_io(main, " + repr(cases) + ")\n"
    return Problem(
        task_id=f"CodeContests/{name}",
        prompt=comment_block(description) + "def main():\n",
        solution=body,
        tests=tests,
        entry_point="main",
    )


def codecontests_problems(rows: Iterable[Mapping], *, max_tests: int | None = 20,
                          where: str = "codecontests") -> list[Problem]:
    """Convert rows in the Hub schema, skipping problems without a usable Python 3 solution or tests."""
    problems = []
    for index, row in enumerate(rows):
        try:
            problems.append(codecontests_problem(row, max_tests=max_tests, where=f"{where}[{index}]"))
        except ValueError:
            continue  # most CodeContests problems have no Python 3 solution: skipping them is the norm
    return problems


def load_codecontests(
    split: str = "test",
    *,
    data_file: str | os.PathLike | None = None,
    max_tests: int | None = 20,
) -> list[Problem]:
    """CodeContests problems with a Python 3 solution, in the project's format (see :func:`codecontests_problem`).

    Reads ``data_file`` (or ``$PROCURE_CODECONTESTS_FILE``), a JSONL file with rows in the Hub schema,
    when given; else ``datasets.load_dataset("deepmind/code_contests", split=split)``, which needs the
    network or the Hub cache.
    """
    data_file = data_file or os.environ.get(CODECONTESTS_FILE_ENV)
    if data_file:
        path = Path(data_file)
        if not path.is_file():
            raise MissingInputError(f"CodeContests file {str(path)!r} does not exist (from data_file= or "
                                    f"${CODECONTESTS_FILE_ENV}); pass a JSONL file in the Hub schema")
        with path.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        return codecontests_problems(rows, max_tests=max_tests, where=str(path))
    import datasets

    require_hub(f"CodeContests ({CODECONTESTS_DATASET!r})",
                f"set ${CODECONTESTS_FILE_ENV} to a JSONL file with rows in the Hub schema")
    try:
        dataset = datasets.load_dataset(CODECONTESTS_DATASET, split=split)
    except Exception as err:  # offline, no cache, unknown split: say what to do instead
        raise UserError(
            f"could not load {CODECONTESTS_DATASET!r} (split {split!r}) from the Hub: {first_line(err)}. Offline, set "
            f"${CODECONTESTS_FILE_ENV} to a JSONL file with rows in the Hub schema "
            f"(e.g. tests/fixtures/code_contests_sample.jsonl)"
        ) from err
    return codecontests_problems(dataset, max_tests=max_tests, where=f"{CODECONTESTS_DATASET}:{split}")


