"""``name_shuffle``: permute the names of user-defined variables among themselves.

The renameable variables (see :func:`~procure_trl.analysis.scopes.renameable_bindings`) exchange names
following a random derangement: every chosen variable ends up with another's name.

Names are permuted inside each outermost function. A name that the function also uses for something
that keeps its name (a public parameter, a global, a builtin) is left out of its pool: handing it to
another variable there would capture or clash. Functions left with a single renameable name then trade
names with each other, when the incoming name is foreign to the receiving function. Every plan is
checked by re-resolving all occurrences
(:func:`~procure_trl.perturbations._renaming.check_renames`); a failing plan is redrawn.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from procure_trl.analysis.program import load_program
from procure_trl.analysis.scopes import Binding, Occurrence, ScopeAnalysis, renameable_bindings
from procure_trl.concepts import Concept
from procure_trl.perturbations._renaming import rename_checked
from procure_trl.perturbations.base import PerturbationResult

CONCEPT = Concept.NAME_SHUFFLE
#: Plans drawn before giving up on a program.
MAX_ATTEMPTS = 8


def _derangement(items: list[str], rng: random.Random) -> list[str]:
    """A uniformly drawn permutation of ``items`` that moves every element (``items``: distinct, >= 2)."""
    if len(set(items)) != len(items) or len(items) < 2:
        raise ValueError(f"a derangement needs at least two distinct items, got {items}")
    while True:
        perm = items[:]
        rng.shuffle(perm)
        if all(a != b for a, b in zip(items, perm)):
            return perm


@dataclass
class _Unit:
    """One outermost function (or module-level lambda) and what it contains."""

    name: str
    bindings: list[Binding] = field(default_factory=list)
    occurrences: list[Occurrence] = field(default_factory=list)

    def identifiers(self) -> set[str]:
        return {o.name for o in self.occurrences}

    def pool(self, renamed: set[int]) -> list[str]:
        """Names of its renameable variables that nothing else in the function uses."""
        fixed = {o.name for o in self.occurrences if o.binding is None or id(o.binding) not in renamed}
        return sorted({b.name for b in self.bindings} - fixed)


def _units(analysis: ScopeAnalysis, bindings: list[Binding]) -> dict[int, _Unit]:
    units: dict[int, _Unit] = {}
    for binding in bindings:
        root = binding.scope.top_level_function()
        assert root is not None  # renameable bindings live in function-like scopes
        units.setdefault(root.id, _Unit(root.name)).bindings.append(binding)
    for occ in analysis.occurrences:
        root = occ.scope.top_level_function()
        if root is not None and root.id in units:
            units[root.id].occurrences.append(occ)
    return units


def _pools(units: dict[int, _Unit], renamed: set[int]) -> tuple[dict[int, list[str]], list[tuple[int, str]]]:
    """Per unit, the names to permute inside it (two or more), and the single-name units left over
    (one per distinct name: two functions both left with ``i`` have nothing to trade)."""
    inside: dict[int, list[str]] = {}
    leftovers: list[tuple[int, str]] = []
    seen: set[str] = set()
    for unit_id in sorted(units):
        pool = units[unit_id].pool(renamed)
        if len(pool) >= 2:
            inside[unit_id] = pool
        elif len(pool) == 1 and pool[0] not in seen:
            seen.add(pool[0])
            leftovers.append((unit_id, pool[0]))
    return inside, leftovers


def _plan(units, inside, leftovers, rng: random.Random) -> dict[int, dict[str, str]]:
    """unit id -> {old name: new name}."""
    plan = {unit_id: dict(zip(pool, _derangement(pool, rng))) for unit_id, pool in inside.items()}
    if len(leftovers) >= 2:
        names = [name for _, name in leftovers]
        for _ in range(MAX_ATTEMPTS):
            incoming = _derangement(names, rng)
            if all(new not in units[unit_id].identifiers() for (unit_id, _), new in zip(leftovers, incoming)):
                for (unit_id, old), new in zip(leftovers, incoming):
                    plan[unit_id] = {old: new}
                break
    return plan


def name_shuffle(source: str, seed: int = 0, *, protected_names: Iterable[str] = ()) -> PerturbationResult:
    """Permute the names of the renameable variables of ``source`` so that each gets another's name.

    Args:
        source: the full program (prompt + solution).
        seed: drives the permutation; the same (source, seed) gives the same result.
        protected_names: extra names never to rename.
    """
    analysis = load_program(source)
    bindings = renameable_bindings(analysis, frozenset(protected_names))
    units = _units(analysis, bindings)
    renamed = {id(b) for b in bindings}
    inside, leftovers = _pools(units, renamed)
    if not inside and len(leftovers) < 2:
        return PerturbationResult.not_applicable(
            CONCEPT, "needs two renameable variable names in one function (or two functions with one each)"
        )
    rng = random.Random(seed)
    problem = "no function can trade its single variable name with another's"
    for attempt in range(MAX_ATTEMPTS):
        plan = _plan(units, inside, leftovers, rng)
        if not plan:
            continue
        renames: dict[Occurrence, str] = {}
        for unit_id, mapping in plan.items():
            for binding in units[unit_id].bindings:
                if binding.name in mapping:
                    for occ in binding.occurrences:
                        renames[occ] = mapping[binding.name]
        code, spans, problem = rename_checked(analysis, renames)
        if not problem:
            details = [
                {"function": units[u].name, "old": old, "new": new}
                for u, mapping in sorted(plan.items())
                for old, new in sorted(mapping.items())
            ]
            return PerturbationResult(CONCEPT, code, spans, details={"permutation": details, "attempts": attempt + 1})
    return PerturbationResult.not_applicable(CONCEPT, problem)
