"""The one problem format of the project: :class:`Problem` (a task with its tests) and :class:`InvalidProblem`
(a row that could not be read, with the reason)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from procure_trl.errors import UserError


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
    def from_dict(cls, row: dict, where: str = "row") -> Problem:
        """Build a problem from a JSON object; a missing or non-string field names ``where`` and the fix."""
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object with the fields of a problem, got {type(row).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in row]
        if missing:
            raise UserError(
                f"{where}: missing field(s) {', '.join(missing)}; every problem needs {', '.join(names)}"
            )
        bad = [n for n in names if not isinstance(row[n], str)]
        if bad:
            raise UserError(f"{where}: field(s) {', '.join(bad)} must be strings")
        empty = [n for n in ("task_id", "entry_point") if not row[n].strip()]
        if empty:
            raise UserError(f"{where}: field(s) {', '.join(empty)} must not be empty "
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


def normalise_newlines(text: str) -> str:
    # MBPP's full set is written with \r\n; offsets into programs must not depend on that.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def comment_block(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.strip().splitlines())
