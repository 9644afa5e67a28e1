"""The concept check of a user-defined concept: only sites of its ast-grep rules changed, each into its fix.

The candidate's changed spans say where it differs from the original. Walking them left to right, the
text before each span must be the original's, the span must start where a site of the concept's rules
starts in the original and hold exactly that site's rewrite, and after the last span the rest must be the
original's. So every changed character is a rewritten site and nothing else changed; which sites were
chosen is not trusted but re-derived from the original (:func:`procure_trl.perturbations.concept_rules.rule_sites`).
"""

from __future__ import annotations

from collections.abc import Sequence

from procure_trl.concepts import UserConcept

__all__ = ["check_rule_rewrite"]


def check_rule_rewrite(original: str, code: str, spans: Sequence[Sequence[int]] | None, concept: UserConcept,
                       sites: int | None = None) -> str | None:
    """``None`` when ``code`` is ``original`` with disjoint sites of ``concept``'s rules rewritten, exactly at
    ``spans``; else the reason. ``sites``, when given, is the number of rewritten sites the candidate claims."""
    from procure_trl.perturbations.concept_rules import rule_sites

    if not concept.rules:
        return f"no ast-grep rule is known for concept {concept.value!r} (load its rules with --concept-rules)"
    if not spans:
        return "a candidate of a rule-defined concept needs its changed spans (the rewritten sites)"
    by_start: dict[int, list] = {}
    for site in rule_sites(original, concept):
        by_start.setdefault(site.start, []).append(site)
    position = previous_end = 0  # in the original, in the candidate
    for index, (start, end) in enumerate(spans):
        if not previous_end <= start <= end <= len(code):
            return f"changed span #{index} [{start}, {end}) is out of order or outside the program"
        gap = code[previous_end:start]
        if original[position:position + len(gap)] != gap:
            return f"text before changed span #{index} differs from the original (a change outside the rule's sites)"
        position += len(gap)
        rewritten = next((s for s in by_start.get(position, ()) if s.replacement == code[start:end]), None)
        if rewritten is None:
            return (f"changed span #{index} {code[start:end]!r} is not the rewrite of a match of rule(s) "
                    f"{', '.join(r.id for r in concept.rules)} at that place")
        position, previous_end = rewritten.end, end
    if original[position:] != code[previous_end:]:
        return "text after the last changed span differs from the original (a change outside the rule's sites)"
    if sites is not None and sites != len(spans):
        return f"expected {sites} rewritten site(s), found {len(spans)}"
    return None
