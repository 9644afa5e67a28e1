"""Our own JSONL format: one :class:`~procure_trl.problems.problem.Problem` a line; bad rows are kept as
:class:`~procure_trl.problems.problem.InvalidProblem` with the reason (a file:line, the fix)."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterable
from pathlib import Path

from procure_trl.errors import MissingInputError, UserError
from procure_trl.problems.problem import InvalidProblem, Problem


def json_error_text(err: json.JSONDecodeError) -> str:
    """``"Expecting ',' delimiter at column 12"``: the decoder's message and where, read as one phrase."""
    message = err.msg[: -len(" at")] if err.msg.endswith(" at") else err.msg  # "... starting at" + " at column"
    return f"{message} at column {err.colno}"


def check_parses(problem: Problem, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` when the problem's program (prompt + solution) is not Python."""
    try:
        ast.parse(problem.program)
    except SyntaxError as err:
        raise UserError(f"{where}: the program (prompt + solution) does not parse: {err.msg} (line {err.lineno}); "
                         "fix the row's prompt or solution") from None
    except ValueError as err:  # null bytes
        raise UserError(f"{where}: the program (prompt + solution) does not parse: {err}; "
                         "fix the row's prompt or solution") from None


def oversize_reason(program: str, max_kb: int | None, where: str) -> str | None:
    """Why ``program`` is too big to analyse (over ``max_kb`` kB of UTF-8), naming ``where`` and the fix; None when
    it is not (or ``max_kb`` is None)."""
    if max_kb is None or len(program) <= max_kb * 250:  # (4 bytes a character at most: surely small enough)
        return None
    size = len(program.encode("utf-8", "surrogatepass"))
    if size <= max_kb * 1000:
        return None
    return (f"{where}: the program is {size / 1000:,.0f} kB, over the {max_kb} kB limit on one program "
            "(--max-source-kb); shorten it or raise the limit")


def _decode_line(data: bytes, where: str) -> tuple[str, str | None]:
    """``(text, None)``, or the text with undecodable bytes replaced and the reason naming ``where`` and the byte."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as err:
        reason = (f"{where}: not UTF-8 (byte 0x{data[err.start]:02x} at column {err.start + 1}); "
                  "save the file as UTF-8")
        return data.decode("utf-8", "replace"), reason


def read_jsonl(path: str | os.PathLike, *, max_program_kb: int | None = None) -> list[Problem | InvalidProblem]:
    """Read problems from a JSONL file, keeping bad rows as :class:`InvalidProblem` (never raises for a row).

    Blank lines are skipped. A line that is not UTF-8, or (with ``max_program_kb``) whose program is bigger
    than that, is a bad row (the big program is not parsed). Duplicate ``task_id`` values are reported as
    invalid (every row after the first), since outputs are keyed by ``task_id``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"problem file {str(path)!r} does not exist; pass a JSONL file with one problem a line")
    out: list[Problem | InvalidProblem] = []
    seen: dict[str, str] = {}
    with path.open("rb") as handle:
        for lineno, data in enumerate(handle, start=1):
            if not data.strip():
                continue
            where = f"{path}:{lineno}"
            raw, undecodable = _decode_line(data.rstrip(b"\r\n"), where)
            if undecodable:
                out.append(InvalidProblem(where, None, undecodable, raw))
                continue
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
                too_big = oversize_reason(problem.program, max_program_kb, where)
                if too_big:
                    raise UserError(too_big)
                check_parses(problem, where)
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
            raise UserError(row.reason)
    return rows  # type: ignore[return-value]


def write_jsonl(problems: Iterable[Problem], path: str | os.PathLike) -> None:
    """Write problems in the project's JSONL format (UTF-8, one object a line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for problem in problems:
            handle.write(json.dumps(problem.to_dict(), ensure_ascii=False) + "\n")


