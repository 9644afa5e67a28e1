"""``analyze``: every fact the perturbations (and the LLM-guided generator's prompts) use, in one object."""

from __future__ import annotations

from dataclasses import dataclass, field

from procure_trl.analysis.branches import if_else_sites
from procure_trl.analysis.dataflow import redefinitions
from procure_trl.analysis.program import load_program
from procure_trl.analysis.scopes import ScopeAnalysis, renameable_bindings
from procure_trl.analysis.swaps import independent_pairs
from procure_trl.concepts import Concept


def _qualified_name(scope) -> str:
    parts = []
    while scope is not None and scope.parent is not None:
        parts.append(scope.name)
        scope = scope.parent
    return ".".join(reversed(parts)) or "<module>"


def _text(source: str, span: tuple[int, int]) -> str:
    return source[span[0] : span[1]]


@dataclass
class ProgramFacts:
    """Static facts about one program, JSON-able (``to_dict``) and per concept (``for_concept``).

    Attributes:
        if_else: flippable ifs and conditional expressions: ``kind`` ("if", "elif", "expression"),
            ``line``, ``condition`` (source text), ``in_elif_chain``.
        redefinitions: variables defined more than once in a function: ``variable``, ``function``,
            ``definitions`` (each: ``line``, ``uses`` = lines of the uses it reaches, ``separable``).
        independent_pairs: adjacent statements that may be swapped: ``lines`` and ``statements`` (source).
        renameable_names: scope (qualified name) -> variable names that may be renamed unobservably.
        protected_names: names that must keep their name (module-level names, public parameters, ...).
    """

    if_else: list[dict] = field(default_factory=list)
    redefinitions: list[dict] = field(default_factory=list)
    independent_pairs: list[dict] = field(default_factory=list)
    renameable_names: dict[str, list[str]] = field(default_factory=dict)
    protected_names: list[str] = field(default_factory=list)
    scope_analysis: ScopeAnalysis | None = field(default=None, repr=False, compare=False)

    def for_concept(self, concept: Concept | str) -> dict:
        """The facts relevant to one concept, as a JSON-able dict an LLM prompt can render."""
        parsed = Concept.parse(concept)
        if parsed is Concept.IF_ELSE_FLIP:
            return {"concept": parsed.value, "if_else": self.if_else}
        if parsed is Concept.INDEPENDENT_SWAP:
            return {"concept": parsed.value, "independent_pairs": self.independent_pairs}
        if parsed is Concept.DEF_USE_BREAK:
            return {"concept": parsed.value, "redefinitions": self.redefinitions}
        return {
            "concept": parsed.value,
            "renameable_names": self.renameable_names,
            "protected_names": self.protected_names,
        }

    def to_dict(self) -> dict:
        return {
            "if_else": self.if_else,
            "redefinitions": self.redefinitions,
            "independent_pairs": self.independent_pairs,
            "renameable_names": self.renameable_names,
            "protected_names": self.protected_names,
        }


def analyze(source: str, protected_names: frozenset[str] | set[str] = frozenset()) -> ProgramFacts:
    """Analyse the full program ``source`` (raises ``InvalidProgramError`` when it does not parse)."""
    analysis = load_program(source)
    tree = analysis.tree
    renameable = renameable_bindings(analysis, frozenset(protected_names))
    names: dict[str, list[str]] = {}
    for binding in renameable:
        names.setdefault(_qualified_name(binding.scope), []).append(binding.name)
    renameable_keys = {b.key for b in renameable}
    protected = sorted(
        {b.name for b in analysis.bindings() if b.key not in renameable_keys} | set(protected_names)
    )
    flows = redefinitions(
        analysis, renameable_bindings(analysis, frozenset(protected_names), allow_public_parameters=True)
    )
    pairs = [
        {
            "lines": [c.first.lineno, c.second.lineno],
            "statements": [_text(source, analysis.source_map.statement_span(s)) for s in (c.first, c.second)],
        }
        for c in independent_pairs(analysis, adjacent_only=True)
    ]
    return ProgramFacts(
        if_else=[s.to_dict() for s in if_else_sites(tree, analysis.source_map)],
        redefinitions=[f.to_dict() for f in flows],
        independent_pairs=pairs,
        renameable_names={k: sorted(v) for k, v in names.items()},
        protected_names=protected,
        scope_analysis=analysis,
    )
