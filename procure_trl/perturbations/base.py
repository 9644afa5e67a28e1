"""What every perturbation returns (and, re-exported, the error for programs that cannot be parsed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from procure_trl.analysis.program import InvalidProgramError, parse_program
from procure_trl.analysis.spans import Span
from procure_trl.concepts import Concept


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


__all__ = ["InvalidProgramError", "PerturbationResult", "parse_program"]
