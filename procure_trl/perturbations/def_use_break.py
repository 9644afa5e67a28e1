"""``def_use_break``: give a redefinition of a variable, and every use it reaches, a fresh name.

``x = f(a); x = g(x); return x`` becomes ``x = f(a); x2 = g(x); return x2``. Only *separable*
definitions are chosen (:func:`procure_trl.analysis.dataflow.redefinitions`): every use the definition
reaches is reached by no other definition, so after the split each use still reads the same value. The
variable must be renameable (local, no closures, no ``global``/``nonlocal``, no ``eval``/``locals()``...);
its parameter, if it is one, keeps its name.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from procure_trl.analysis.dataflow import redefinitions
from procure_trl.analysis.program import load_program
from procure_trl.analysis.scopes import is_valid_fresh_name, renameable_bindings
from procure_trl.concepts import Concept
from procure_trl.perturbations._renaming import rename_checked
from procure_trl.perturbations.base import PerturbationResult

CONCEPT = Concept.DEF_USE_BREAK


def fresh_variant(name: str, taken: set[str] | frozenset[str]) -> str:
    """``name`` with the smallest numeric suffix (2, 3, ...) that collides with nothing in ``taken``."""
    base = name.rstrip("0123456789") or name
    k = 2
    while not is_valid_fresh_name(f"{base}{k}", taken):
        k += 1
    return f"{base}{k}"


def _pick(options: list, sites: int, seed: int) -> list:
    """``sites`` distinct options, in ``seed``'s order, leaving every variable at least one definition
    under its old name (splitting them all would be a rename)."""
    order = list(range(len(options)))
    if sites == 1:
        return [options[random.Random(seed).randrange(len(options))]]  # the one-site choice, unchanged
    random.Random(seed).shuffle(order)
    chosen: list = []
    for index in order:
        flow, definition = options[index]
        split = sum(f is flow for f, _ in chosen) + 1
        if split < len(flow.definitions):
            chosen.append((flow, definition))
        if len(chosen) == sites:
            break
    return chosen


def def_use_break(
    source: str, seed: int = 0, *, protected_names: Iterable[str] = (), sites: int = 1
) -> PerturbationResult:
    """Split ``sites`` redefinitions (chosen with ``seed``) of variables of ``source`` into fresh variables.

    Args:
        source: the full program (prompt + solution).
        seed: chooses among the separable redefinitions.
        protected_names: names never to touch.
        sites: how many definitions to split, each with its own fresh name.
    """
    analysis = load_program(source)
    bindings = renameable_bindings(analysis, frozenset(protected_names), allow_public_parameters=True)
    flows = redefinitions(analysis, bindings)
    options = [(flow, d) for flow in flows for d in flow.definitions if d.separable]
    if not options:
        if not flows:
            reason = "no renameable variable is defined twice"
        else:
            reason = "no redefinition is separable: " + "; ".join(
                f"{f.name} line {d.line}: {d.why_not}" for f in flows for d in f.definitions
            )[:300]
        return PerturbationResult.not_applicable(CONCEPT, reason)
    chosen = _pick(options, sites, seed)
    if len(chosen) < sites:
        return PerturbationResult.not_applicable(
            CONCEPT, f"only {len(chosen)} separable redefinition(s) can be split together; {sites} were asked for")
    taken = set(analysis.identifiers)
    renames = {}
    splits = []
    for flow, definition in chosen:
        new_name = fresh_variant(flow.name, taken)
        taken.add(new_name)
        renames.update({occ: new_name for occ in (*definition.stores, *definition.uses)})
        splits.append({
            "variable": flow.name,
            "new_name": new_name,
            "function": flow.binding.scope.name,
            "definition_line": definition.line,
            "use_lines": sorted({u.line for u in definition.uses}),
        })
    code, spans, problem = rename_checked(analysis, renames)
    if problem:
        return PerturbationResult.not_applicable(CONCEPT, f"rename check failed: {problem}")
    details: dict[str, object] = dict(splits[0]) if sites == 1 else {"splits": splits}
    details.update(candidates=len(options), sites=len(chosen))
    return PerturbationResult(CONCEPT, code, spans, details=details)
