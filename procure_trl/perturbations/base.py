"""What every perturbation returns, and the error for programs that cannot be analysed."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from procure_trl.analysis.spans import Span
from procure_trl.concepts import Concept


class InvalidProgramError(ValueError):
    """The source is not a Python program this version of Python can parse."""

    @classmethod
    def from_syntax_error(cls, error: SyntaxError) -> "InvalidProgramError":
        line = (error.text or "").rstrip("\n")
        where = f"line {error.lineno}, column {error.offset}"
        shown = f": {line.strip()!r}" if line.strip() else ""
        return cls(
            f"cannot parse the program ({where}): {error.msg}{shown}. "
            "Pass the full program (prompt + solution) as valid Python source."
        )


def parse_program(source: str) -> ast.Module:
    """``ast.parse`` that turns a syntax error into :class:`InvalidProgramError` naming line and column."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str holding a Python program, got {type(source).__name__}")
    try:
        return ast.parse(source)
    except SyntaxError as error:
        raise InvalidProgramError.from_syntax_error(error) from None
    except ValueError as error:  # e.g. "source code string cannot contain null bytes"
        raise InvalidProgramError(f"cannot parse the program: {error}. Remove the offending characters.") from None


@dataclass(frozen=True)
class PerturbationResult:
    """The outcome of one perturbation of one program.

    Attributes:
        concept: the concept that was applied.
        code: the perturbed full program, or ``None`` when the perturbation does not apply.
        changed_spans: ``[start, end)`` character offsets into ``code`` covering exactly the text the
            perturbation wrote; sorted and non-overlapping. Every character outside them is the original
            character (shifted by the length changes of earlier spans).
        reason: why the perturbation does not apply (``""`` when it applied).
        details: JSON-able facts about what was done (rename map, swapped lines, flipped line, ...).
    """

    concept: Concept
    code: str | None
    changed_spans: tuple[Span, ...] = ()
    reason: str = ""
    details: dict = field(default_factory=dict)

    @property
    def applied(self) -> bool:
        return self.code is not None

    @classmethod
    def not_applicable(cls, concept: Concept, reason: str, **details) -> "PerturbationResult":
        return cls(concept=concept, code=None, changed_spans=(), reason=reason, details=dict(details))

    def to_dict(self) -> dict:
        return {
            "concept": self.concept.value,
            "code": self.code,
            "changed_spans": [list(s) for s in self.changed_spans],
            "reason": self.reason,
            "details": self.details,
        }
