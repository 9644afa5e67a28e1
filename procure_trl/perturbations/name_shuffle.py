"""``name_shuffle``: permute the names of user-defined variables among themselves.

The renameable variables (see :func:`~procure_trl.analysis.scopes.renameable_bindings`) of the program
exchange names following a random derangement of their distinct names: every chosen variable ends up
with another's name. A permutation that would make some occurrence refer to a different variable (a
nested function reading an outer variable whose new name it binds itself, say) is rejected by
:func:`~procure_trl.perturbations._renaming.check_renames` and another permutation is drawn.
"""

from __future__ import annotations

import random
from typing import Iterable

from procure_trl.analysis.scopes import Binding, renameable_bindings
from procure_trl.analysis.program import load_program
from procure_trl.concepts import Concept
from procure_trl.perturbations._renaming import rename_checked
from procure_trl.perturbations.base import PerturbationResult

CONCEPT = Concept.NAME_SHUFFLE
#: Derangements tried before giving up on a program.
MAX_ATTEMPTS = 8


def _derangement(items: list[str], rng: random.Random) -> list[str]:
    """A uniformly drawn permutation of ``items`` that moves every element (``len(items) >= 2``)."""
    while True:
        perm = items[:]
        rng.shuffle(perm)
        if all(a != b for a, b in zip(items, perm)):
            return perm


def name_shuffle(source: str, seed: int = 0, *, protected_names: Iterable[str] = ()) -> PerturbationResult:
    """Permute the names of the renameable variables of ``source`` so that each gets another's name.

    Args:
        source: the full program (prompt + solution).
        seed: drives the permutation; the same (source, seed) gives the same result.
        protected_names: extra names never to rename.
    """
    analysis = load_program(source)
    bindings = renameable_bindings(analysis, frozenset(protected_names))
    by_name: dict[str, list[Binding]] = {}
    for binding in bindings:
        by_name.setdefault(binding.name, []).append(binding)
    names = sorted(by_name)
    if len(names) < 2:
        return PerturbationResult.not_applicable(
            CONCEPT, f"needs at least two renameable variable names, found {len(names)}"
        )
    rng = random.Random(seed)
    problem = ""
    for attempt in range(MAX_ATTEMPTS):
        permuted = _derangement(names, rng)
        mapping = dict(zip(names, permuted))
        renames = {occ: mapping[b.name] for b in bindings for occ in b.occurrences}
        code, spans, problem = rename_checked(analysis, renames)
        if not problem:
            return PerturbationResult(CONCEPT, code, spans, details={"permutation": mapping, "attempts": attempt + 1})
    return PerturbationResult.not_applicable(
        CONCEPT, f"every permutation tried ({MAX_ATTEMPTS}) would change what a name refers to: {problem}"
    )
