"""Append-only JSONL output that a killed run can resume.

Each finished (task_id, concept) pair is written as ONE line with a single ``write`` call, flushed and
fsync'ed before the next pair is reported done. A run killed at any moment therefore leaves complete
lines, plus at most one torn last line (a write cut short); :meth:`ResumableJsonlWriter.open` cuts that
torn tail off before appending. What a kill loses is only the pairs whose requests were in flight.
On resume, the pairs already present are skipped, so every pair ends up with exactly one row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from procure_trl.generation import write_records


def pair_key(row: Mapping[str, Any]) -> tuple[str, str]:
    return str(row["task_id"]), str(row["concept"])


def read_rows(path: Path) -> tuple[list[dict], int]:
    """The complete rows of ``path`` and the byte length of its complete lines (a torn tail is ignored).

    A complete line that is not a JSON object is corruption this writer cannot have caused: raise with
    the line number instead of guessing.
    """
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1  # bytes after the last newline are a torn write
    rows = []
    for lineno, line in enumerate(data[:good_end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise ValueError(
                f"{path}:{lineno}: not a JSON line ({err}); fix or remove that line, then rerun with --resume"
            ) from None
        if not isinstance(row, dict) or "task_id" not in row or "concept" not in row:
            raise ValueError(f"{path}:{lineno}: a row needs task_id and concept; is this the right file?")
        rows.append(row)
    return rows, good_end


class ResumableJsonlWriter:
    """Writes rows to ``path``; with ``resume=True`` keeps the rows already there and appends after them."""

    def __init__(self, path: str | os.PathLike[str], resume: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        self.existing: list[dict] = []
        self._handle = None

    @property
    def done(self) -> set[tuple[str, str]]:
        return {pair_key(r) for r in self.existing}

    def open(self) -> "ResumableJsonlWriter":
        if self.path.exists() and self.path.stat().st_size > 0:
            if not self.resume:
                raise FileExistsError(
                    f"{self.path} already exists; pass --resume (resume=True) to keep its rows and add the "
                    "missing pairs, or choose another output path"
                )
            self.existing, good_end = read_rows(self.path)
            with open(self.path, "r+b") as handle:  # drop a torn last line left by a kill
                handle.truncate(good_end)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")
        return self

    def write(self, row: Mapping[str, Any]) -> None:
        if self._handle is None:
            raise RuntimeError("open() the writer before writing")
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def write_all(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "ResumableJsonlWriter":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def sort_jsonl(path: Path, order: Sequence[tuple[str, str]]) -> list[dict]:
    """Rewrite ``path`` with its rows in ``order`` of (task_id, concept) pairs; returns the rows.

    Rows whose pair is not in ``order`` (left by an earlier run over other problems) follow, in their
    file order. The new file is written next to the old one and moved over it with :func:`os.replace`:
    a kill during the rewrite leaves the old, complete file.
    """
    rows, _ = read_rows(path)
    rank = {pair: i for i, pair in enumerate(order)}
    rows.sort(key=lambda r: rank.get(pair_key(r), len(rank)))  # stable: unknown pairs keep their order
    write_records(rows, path)  # the rule engine's writer: same bytes, atomic replace
    return rows
