"""``name_random``: rename user-defined variables to fresh random identifiers.

Every variable :func:`~procure_trl.analysis.scopes.renameable_bindings` allows (locals of functions,
lambdas and comprehensions that no caller, test or introspection can observe) gets a new random name that
collides with no identifier-like token of the program, no keyword and no builtin. The result is checked by
re-resolving every occurrence (:func:`~procure_trl.perturbations._renaming.check_renames`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from procure_trl.analysis.program import load_program
from procure_trl.analysis.scopes import renameable_bindings
from procure_trl.concepts import Concept
from procure_trl.perturbations._renaming import random_identifier, rename_checked
from procure_trl.perturbations.base import PerturbationResult

CONCEPT = Concept.NAME_RANDOM


def name_random(source: str, seed: int = 0, *, protected_names: Iterable[str] = ()) -> PerturbationResult:
    """Rename every renameable variable of ``source`` to a fresh random identifier.

    Args:
        source: the full program (prompt + solution).
        seed: drives the random names; the same (source, seed) gives the same result.
        protected_names: extra names never to rename (e.g. names the tests read).
    """
    analysis = load_program(source)
    bindings = renameable_bindings(analysis, frozenset(protected_names))
    if not bindings:
        return PerturbationResult.not_applicable(CONCEPT, "no user-defined variable can be renamed unobservably")
    rng = random.Random(seed)
    taken = set(analysis.identifiers)
    renames = {}
    mapping: list[dict] = []
    for binding in sorted(bindings, key=lambda b: (b.occurrences[0].span, b.name)):
        new = random_identifier(rng, taken)
        taken.add(new)
        for occ in binding.occurrences:
            renames[occ] = new
        mapping.append(
            {"scope": binding.scope.name, "line": binding.occurrences[0].line, "old": binding.name, "new": new}
        )
    code, spans, problem = rename_checked(analysis, renames)
    if problem:
        return PerturbationResult.not_applicable(CONCEPT, f"rename check failed: {problem}")
    return PerturbationResult(CONCEPT, code, spans, details={"renames": mapping})
