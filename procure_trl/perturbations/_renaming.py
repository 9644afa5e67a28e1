"""Identifier edits shared by the naming and data-flow perturbations, with a soundness check.

A rename plan maps occurrences (identifier spans found by :mod:`procure_trl.analysis.scopes`) to new
names. :func:`apply_renames` writes them as span edits -- every other byte of the source is kept -- and
:func:`check_renames` re-analyses the result and proves that each occurrence still refers to the same
variable as before (and only the intended occurrences changed name): no capture, no shadowing.
"""

from __future__ import annotations

import ast
import random
import string
import symtable

from procure_trl.analysis.scopes import Occurrence, ScopeAnalysis, analyze_scopes, is_valid_fresh_name
from procure_trl.analysis.spans import Edit, Span, apply_edits


def apply_renames(source: str, renames: dict[Occurrence, str]) -> tuple[str, tuple[Span, ...]]:
    """Replace each occurrence's identifier with its new name; returns new code and changed spans."""
    edits = [Edit(occ.span[0], occ.span[1], new) for occ, new in renames.items() if occ.span is not None]
    if len(edits) != len(renames):
        raise ValueError("every renamed occurrence needs a known span")
    return apply_edits(source, edits)


def rename_checked(analysis: ScopeAnalysis, renames: dict[Occurrence, str]) -> tuple[str, tuple[Span, ...], str]:
    """Apply ``renames`` to ``analysis.source`` and check the result (:func:`check_renames`).

    Returns (code, changed spans, problem); ``problem`` is ``""`` when the rename is proven sound.
    """
    try:
        code, spans = apply_renames(analysis.source, renames)
    except ValueError as error:  # overlapping spans: positions we cannot trust
        return analysis.source, (), str(error)
    return code, spans, check_renames(analysis, renames, code)


def _key(occ: Occurrence) -> tuple:
    if occ.binding is None:
        return ("free", occ.name)
    return ("bound", occ.binding.scope.id, occ.binding.name)


def check_renames(before: ScopeAnalysis, renames: dict[Occurrence, str], new_source: str) -> str:
    """Return ``""`` when ``new_source`` is ``before.source`` with exactly ``renames`` applied *and* every
    occurrence resolves to the corresponding variable; otherwise a reason naming what went wrong."""
    try:
        tree = ast.parse(new_source)
        # the compiler's scope pass catches what the parser does not (duplicate parameters, a name
        # used before its global declaration, a walrus rebinding a comprehension variable...)
        symtable.symtable(new_source, "<perturbed>", "exec")
    except SyntaxError as error:
        return f"renamed program is not valid Python: {error.msg} (line {error.lineno})"
    after = analyze_scopes(new_source, tree)
    old = sorted(before.occurrences, key=_order)
    new = sorted(after.occurrences, key=_order)
    if len(old) != len(new):
        return "renamed program has a different number of identifier occurrences"
    forward: dict[tuple, tuple] = {}
    backward: dict[tuple, tuple] = {}
    for o, n in zip(old, new):
        expected_name = renames.get(o, o.name)
        if n.name != expected_name or n.kind is not o.kind:
            return f"occurrence of {o.name!r} on line {o.line} did not become {expected_name!r}"
        # group = (old variable, new name): a variable split by def_use_break becomes two groups
        group = (_key(o), expected_name)
        target = _key(n)
        if (o.binding is None) != (n.binding is None):
            return f"{o.name!r} on line {o.line} changed between a local and a global/builtin name"
        if forward.setdefault(group, target) != target or backward.setdefault(target, group) != group:
            return f"renaming would make {expected_name!r} on line {o.line} refer to another variable"
    return ""


def _order(occ: Occurrence) -> tuple:
    # occurrences without a span (import aliases, global statements) keep their relative order by node
    node = occ.node
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0), occ.span[0] if occ.span else -1, occ.kind.value)


_FIRST = string.ascii_lowercase
_REST = string.ascii_lowercase + string.digits


def random_identifier(rng: random.Random, taken: set[str] | frozenset[str], length: tuple[int, int] = (3, 8)) -> str:
    """A fresh random identifier (lowercase letter, then letters/digits) colliding with nothing in ``taken``."""
    for _ in range(1000):
        n = rng.randint(*length)
        name = rng.choice(_FIRST) + "".join(rng.choice(_REST) for _ in range(n - 1))
        if is_valid_fresh_name(name, taken):
            return name
    raise RuntimeError("could not draw a fresh identifier in 1000 tries")  # practically unreachable
