"""Whether a cut row tests its concept: what is left to complete, and whether it depends on the change (pure).

A counterfactual row is scored on two prompts cut from the original and the counterfactual program
(:mod:`procure_trl.evaluation.prompts`); the model completes the rest, the *remainder*. A prompt can hold the
change and still leave a remainder that never looks at it: when two independent statements are swapped
early and the remainder only returns a value neither of them touched, both sides are asked for the same
text, and the row measures little about the concept. Two facts per row say how much it tests:

* ``remainder_differs``: the text left to complete differs between the two sides (the original's remainder
  against the counterfactual's). Renamings and flipped branches usually make it differ; swaps often do not.
* ``dependent``: the counterfactual's remainder uses a name or value the change touched. It does when

  1. the remainder itself holds (part of) a changed span: a renamed variable used there, the branch now
     under a flipped condition, a moved statement; or
  2. a name read in the remainder is reached by a definition inside a changed span, by the def-use chains of
     :mod:`procure_trl.analysis.dataflow` (a variable assigned by a swapped statement or in a flipped
     branch and read later). Where the analysis cannot follow a variable's flow (module-level names,
     closures, ``try``/``finally``...), any definition of it inside a changed span counts; or
  3. a name read in the remainder holds an object that changed code mutates in place (``xs.append(c)``,
     ``xs[i] = v`` or ``obj.attr = v`` inside a changed span).

A program the analysis cannot parse counts as dependent when its remainder differs (nothing better is
known about it).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from procure_trl.analysis.dataflow import function_flows
from procure_trl.analysis.program import InvalidProgramError, load_program
from procure_trl.analysis.scopes import Binding, Occurrence, OccurrenceKind, ScopeAnalysis, ScopeKind

__all__ = ["RowDependence", "remainder", "row_dependence", "remainder_holds_change", "reads_changed_values"]

#: Occurrences that give a variable a value (a definition the change may have touched).
_DEFINING = (OccurrenceKind.STORE, OccurrenceKind.PARAMETER)


@dataclass(frozen=True)
class RowDependence:
    """What the remainder of one row depends on (see the module docstring)."""

    remainder_differs: bool
    dependent: bool


def remainder(program: str, prompt: str) -> str:
    """The text of ``program`` left to complete after ``prompt``, a cut of it.

    The prompt covers the program as far as the two agree (a cut may add a final line break).
    """
    return program[len(os.path.commonprefix([program, prompt])):]


def _overlaps(start: int, end: int, spans: Iterable[Sequence[int]]) -> bool:
    """``[start, end)`` shares a character with a span; an empty span (a deletion) counts at its position."""
    for span in spans:
        s, e = int(span[0]), int(span[1])
        if (s < end and start < e) or (s == e and start <= s < end):
            return True
    return False


def remainder_holds_change(code: str, cut: int, changed_spans: Sequence[Sequence[int]]) -> bool:
    """Some changed span of ``code`` reaches past the cut offset ``cut`` (into the text left to complete)."""
    return _overlaps(cut, max(len(code), cut + 1), changed_spans)


def _touched_definitions(
    analysis: ScopeAnalysis, changed_spans: Sequence[Sequence[int]]
) -> dict[int, list[Occurrence]]:
    """id(binding) -> its definitions (stores, parameters) that lie in a changed span."""
    out: dict[int, list[Occurrence]] = {}
    for occ in analysis.occurrences:
        if occ.kind in _DEFINING and occ.binding is not None and occ.span is not None:
            if _overlaps(occ.span[0], occ.span[1], changed_spans):
                out.setdefault(id(occ.binding), []).append(occ)
    return out


def _mutated_in_change(analysis: ScopeAnalysis, changed_spans: Sequence[Sequence[int]]) -> dict[int, Binding]:
    """id(binding) -> binding, for the variables whose object changed code mutates in place."""
    parents = analysis.parents
    out: dict[int, Binding] = {}
    for occ in analysis.occurrences:
        if occ.kind is not OccurrenceKind.LOAD or occ.binding is None or occ.span is None:
            continue
        if not _overlaps(occ.span[0], occ.span[1], changed_spans):
            continue
        parent = parents.get(id(occ.node))
        if not isinstance(parent, (ast.Attribute, ast.Subscript)) or parent.value is not occ.node:
            continue
        grandparent = parents.get(id(parent))
        method_call = (isinstance(parent, ast.Attribute) and isinstance(grandparent, ast.Call)
                       and grandparent.func is parent)
        if method_call or isinstance(parent.ctx, (ast.Store, ast.Del)):
            out[id(occ.binding)] = occ.binding
    return out


def _reads_after(binding: Binding, cut: int) -> list[Occurrence]:
    return [o for o in binding.occurrences if o.kind is OccurrenceKind.LOAD and o.span is not None and o.span[0] >= cut]


def _reached_by(
    analysis: ScopeAnalysis, binding: Binding, definitions: list[Occurrence], reads: list[Occurrence]
) -> bool:
    """Some read is reached by one of ``definitions`` (def-use chains), or, where the flow cannot be followed,
    the binding has a read at all."""
    if binding.scope.kind is not ScopeKind.FUNCTION:
        return bool(reads)
    flow = function_flows(analysis, binding.scope, [binding])[0]
    if not flow.eligible:
        return bool(reads)
    touched_nodes = {d.cfg_node for d in flow.definitions if any(s in definitions for s in d.stores)}
    return any(flow.reaching.get(id(read), set()) & touched_nodes for read in reads)


def reads_changed_values(code: str, cut: int, changed_spans: Sequence[Sequence[int]]) -> bool:
    """A name read after offset ``cut`` of ``code`` is reached by a definition inside a changed span, or holds an
    object that changed code mutates (items 2 and 3 of the module docstring).

    Raises:
        InvalidProgramError: ``code`` does not parse.
    """
    analysis = load_program(code)
    bindings = {id(b): b for b in analysis.bindings()}
    for key, definitions in _touched_definitions(analysis, changed_spans).items():
        binding = bindings[key]
        reads = _reads_after(binding, cut)
        if reads and _reached_by(analysis, binding, definitions, reads):
            return True
    return any(_reads_after(binding, cut) for binding in _mutated_in_change(analysis, changed_spans).values())


def row_dependence(
    original: str, code: str, reference_cut: str, counterfactual_cut: str, changed_spans: Sequence[Sequence[int]]
) -> RowDependence:
    """``remainder_differs`` and ``dependent`` of one row.

    Args:
        original: the original full program.
        code: the counterfactual full program.
        reference_cut: the original program cut (the reference prompt, before any prompt format is applied).
        counterfactual_cut: the counterfactual program cut the same way.
        changed_spans: ``[start, end)`` character spans of ``code`` that the perturbation changed.
    """
    rest_original, rest_code = remainder(original, reference_cut), remainder(code, counterfactual_cut)
    differs = rest_original != rest_code
    cut = len(code) - len(rest_code)
    if remainder_holds_change(code, cut, changed_spans):
        return RowDependence(differs, True)
    try:
        return RowDependence(differs, reads_changed_values(code, cut, changed_spans))
    except InvalidProgramError:
        return RowDependence(differs, differs)
