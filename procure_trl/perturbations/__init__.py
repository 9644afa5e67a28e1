"""The five rule-based perturbations, one module per concept, a registry, and user-defined concepts (ast-grep).

Each perturbation is a pure function ``(source, seed=0, *, protected_names=()) -> PerturbationResult``:
the same inputs always give the same result, the source is the full program (prompt + solution), and a
result either holds the perturbed program with the exact character spans that changed, or the reason the
perturbation does not apply. Unparsable code raises :class:`InvalidProgramError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from procure_trl.concepts import AnyConcept, Concept, UserConcept
from procure_trl.perturbations.base import InvalidProgramError, PerturbationResult
from procure_trl.perturbations.concept_rules import apply_concept_rules, load_concept_rules
from procure_trl.perturbations.def_use_break import def_use_break
from procure_trl.perturbations.if_else_flip import if_else_flip
from procure_trl.perturbations.independent_swap import independent_swap
from procure_trl.perturbations.name_random import name_random
from procure_trl.perturbations.name_shuffle import name_shuffle

#: concept -> perturbation function
PERTURBATIONS: dict[Concept, Callable[..., PerturbationResult]] = {
    Concept.IF_ELSE_FLIP: if_else_flip,
    Concept.INDEPENDENT_SWAP: independent_swap,
    Concept.DEF_USE_BREAK: def_use_break,
    Concept.NAME_RANDOM: name_random,
    Concept.NAME_SHUFFLE: name_shuffle,
}


#: concepts whose perturbation can change several sites at once (``sites=K``); the renaming concepts
#: already rename every renameable name
MULTI_SITE_CONCEPTS = (Concept.IF_ELSE_FLIP, Concept.INDEPENDENT_SWAP, Concept.DEF_USE_BREAK)


def perturb(
    source: str, concept: AnyConcept | str, seed: int = 0, *, protected_names: Iterable[str] = (), sites: int = 1
) -> PerturbationResult:
    """Apply the perturbation for ``concept`` to the full program ``source``.

    Args:
        source: the full program (prompt + solution).
        concept: a :class:`Concept` or its string value (``"if_else_flip"``...), or a user-defined concept
            (:class:`~procure_trl.concepts.UserConcept`, or the name of a registered one): its ast-grep rules
            rewrite ``sites`` of their matches (:mod:`procure_trl.perturbations.concept_rules`).
        seed: chooses among the possible perturbations; same inputs, same result.
        protected_names: names that must keep their name (e.g. names the tests read); user rules ignore it
            (their candidates are checked by the tests).
        sites: how many places to change at once (flip K ifs, swap K pairs, split K definitions); not
            applicable when the program has fewer. Ignored by the renaming concepts, which rename every
            renameable name.

    Raises:
        InvalidProgramError: ``source`` does not parse (the message names line and column).
        ValueError: unknown concept.
    """
    concept = Concept.parse(concept)
    if sites < 1:
        raise ValueError(f"sites must be >= 1, got {sites}")
    if isinstance(concept, UserConcept):
        return apply_concept_rules(source, concept, seed, sites=sites)
    if concept in MULTI_SITE_CONCEPTS and sites > 1:
        return PERTURBATIONS[concept](source, seed, protected_names=tuple(protected_names), sites=sites)
    return PERTURBATIONS[concept](source, seed, protected_names=tuple(protected_names))


__all__ = [
    "MULTI_SITE_CONCEPTS",
    "PERTURBATIONS",
    "InvalidProgramError",
    "PerturbationResult",
    "apply_concept_rules",
    "load_concept_rules",
    "def_use_break",
    "if_else_flip",
    "independent_swap",
    "name_random",
    "name_shuffle",
    "perturb",
]
