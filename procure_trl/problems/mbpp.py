"""MBPP, full (974) or sanitized (427): from the Hub (``google-research-datasets/mbpp``) or a local copy
(``$PROCURE_MBPP_DIR``)."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from procure_trl.errors import MissingInputError, UserError, first_line
from procure_trl.hub import require_hub
from procure_trl.problems.problem import Problem, comment_block, normalise_newlines

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
        raise UserError(f"{where}: the reference code does not parse ({err.msg}, line {err.lineno})") from None
    defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    for name in _called_functions(tests):
        if name in defined:
            return name
    if defined:
        return defined[-1]
    raise UserError(f"{where}: no top-level function in the reference code; cannot tell the entry point")


def _mbpp_problem(task_id: int, text: str, code: str, test_list: Sequence[str], setup: str, where: str) -> Problem:
    code = normalise_newlines(code).rstrip() + "\n"
    test_list = [normalise_newlines(t).strip() for t in test_list]
    setup = normalise_newlines(setup).strip()
    prompt = comment_block(text) + "# Your code should pass these tests:\n" + "".join(f"# {t}\n" for t in test_list)
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
        raise MissingInputError(
            f"MBPP folder {str(data_dir)!r} (from data_dir= or ${MBPP_DIR_ENV}) does not exist; point it at a folder "
            f"holding mbpp.jsonl and sanitized-mbpp.json, or unset ${MBPP_DIR_ENV} to load {MBPP_DATASET} from the Hub"
        )
    path = data_dir / ("sanitized-mbpp.json" if sanitized else "mbpp.jsonl")
    if not path.is_file():
        raise MissingInputError(
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
    require_hub(
        f"MBPP ({MBPP_DATASET!r})", f"set ${MBPP_DIR_ENV} to a folder holding mbpp.jsonl and sanitized-mbpp.json"
    )
    try:
        splits = datasets.load_dataset(MBPP_DATASET, config)
    except Exception as err:  # offline, no cache: say how to use a local copy instead
        raise MissingInputError(
            f"could not load {MBPP_DATASET!r} (config {config!r}) from the Hub: {first_line(err)}. Offline, set "
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
        raise UserError(f"unknown MBPP split {split!r}; choose one of {', '.join(MBPP_SPLITS)} or None for all")
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


