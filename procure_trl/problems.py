"""The one problem format of the project, and loaders that turn benchmarks into it.

A problem is one JSON object a line with the fields of :class:`Problem`. The full program is
``prompt + solution``; ``tests`` is Python source that, executed after the program in the same
namespace, raises if the program is wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


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
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in row]
        if missing:
            raise ValueError(
                f"{where}: missing field(s) {', '.join(missing)}; every problem needs {', '.join(names)}"
            )
        bad = [n for n in names if not isinstance(row[n], str)]
        if bad:
            raise ValueError(f"{where}: field(s) {', '.join(bad)} must be strings")
        return cls(**{n: row[n] for n in names})
