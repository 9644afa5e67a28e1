"""What every perturbation returns (and, re-exported, the error for programs that cannot be parsed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from procure_trl.analysis.program import InvalidProgramError, parse_program
from procure_trl.analysis.spans import Span
from procure_trl.concepts import AnyConcept


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

    concept: AnyConcept
    code: str | None
    changed_spans: tuple[Span, ...] = ()
    reason: str = ""
    details: dict = field(default_factory=dict)

    @property
    def applied(self) -> bool:
        return self.code is not None

    @property
    def sites(self) -> int:
        """How many places the perturbation changed: flipped ifs, swapped pairs or split definitions
        (``details["sites"]``), or renamed variables; 0 when it did not apply."""
        if not self.applied:
            return 0
        for key in ("sites", "renames", "permutation"):
            if key in self.details:
                value = self.details[key]
                return value if isinstance(value, int) else len(value)
        return 1

    @classmethod
    def not_applicable(cls, concept: AnyConcept, reason: str, **details) -> PerturbationResult:
        return cls(concept=concept, code=None, changed_spans=(), reason=reason, details=dict(details))

    def to_dict(self) -> dict:
        return {
            "concept": self.concept.value,
            "code": self.code,
            "changed_spans": [list(s) for s in self.changed_spans],
            "reason": self.reason,
            "details": self.details,
        }


def pick_sites(order: Sequence[int], sites: int, usable: Callable[[int], bool],
               compatible: Callable[[int, int], bool]) -> list[int]:
    """``sites`` candidates that are each ``usable`` and pairwise ``compatible``, taken greedily in
    ``order`` starting from each usable candidate in turn; the largest group found when none has
    ``sites`` members. With ``sites == 1``: the first usable candidate of ``order``."""
    best: list[int] = []
    for start in order:
        if not usable(start):
            continue
        group = [start]
        for index in order:
            if len(group) == sites:
                break
            if index != start and usable(index) and all(compatible(index, other) for other in group):
                group.append(index)
        if len(group) > len(best):
            best = group
        if len(best) == sites:
            break
    return best


__all__ = ["InvalidProgramError", "PerturbationResult", "parse_program", "pick_sites"]
