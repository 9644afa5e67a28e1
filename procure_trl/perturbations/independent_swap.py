"""``independent_swap``: swap two statements of one block that commute with each other and with every
statement between them (adjacent or not).

Candidates come from :func:`procure_trl.analysis.swaps.independent_pairs` (independence of data, control
and effects: :func:`procure_trl.analysis.effects.independent`);
the swap exchanges the two statements' texts in place (comments and blank lines between them stay where
they are) and is checked against the same swap done on the ``ast``.
"""

from __future__ import annotations

import ast
import random
from typing import Iterable

from procure_trl.analysis.program import load_program
from procure_trl.analysis.scopes import ScopeAnalysis
from procure_trl.analysis.spans import Edit, apply_edits, same_structure, top_level_index
from procure_trl.analysis.swaps import SwapCandidate, independent_pairs
from procure_trl.concepts import Concept
from procure_trl.perturbations.base import PerturbationResult

CONCEPT = Concept.INDEPENDENT_SWAP


def statement_text(analysis: ScopeAnalysis, stmt: ast.stmt) -> str:
    """The source of ``stmt`` as the swap moves it (without a trailing ``;``)."""
    start, end = analysis.source_map.statement_span(stmt)
    return analysis.source[start:end]


def _swap_edits(candidate: SwapCandidate, analysis: ScopeAnalysis) -> list[Edit]:
    smap = analysis.source_map
    s1 = smap.statement_span(candidate.first)
    s2 = smap.statement_span(candidate.second)
    text1, text2 = statement_text(analysis, candidate.first), statement_text(analysis, candidate.second)
    return [Edit(s1[0], s1[1], text2), Edit(s2[0], s2[1], text1)]


def _expected_tree(source: str, candidate: SwapCandidate) -> ast.Module:
    """The original tree with the two statements swapped on the ``ast`` -- the specification."""
    tree = ast.parse(source)
    first = candidate.first
    for node in ast.walk(tree):
        value = getattr(node, candidate.block.field, None)
        i, j = candidate.index, candidate.partner
        if isinstance(value, list) and len(value) > j:
            stmt = value[i]
            if isinstance(stmt, ast.stmt) and (stmt.lineno, stmt.col_offset, type(stmt)) == (
                first.lineno, first.col_offset, type(first)
            ):
                value[i], value[j] = value[j], value[i]
                return tree
    raise AssertionError("swapped statements not found again")  # unreachable: same source


def independent_swap(source: str, seed: int = 0, *, protected_names: Iterable[str] = ()) -> PerturbationResult:
    """Swap one pair of commuting statements of ``source`` (chosen with ``seed``).

    ``protected_names`` is accepted for a uniform signature; swapping renames nothing.
    """
    analysis = load_program(source)
    candidates = independent_pairs(analysis)
    if not candidates:
        return PerturbationResult.not_applicable(CONCEPT, "no two statements of one block are independent")
    order = list(range(len(candidates)))
    random.Random(seed).shuffle(order)
    for index in order:
        candidate = candidates[index]
        code, spans = apply_edits(source, _swap_edits(candidate, analysis))
        try:
            new_tree = ast.parse(code)
        except SyntaxError:
            continue
        index = top_level_index(analysis.tree, candidate.first.lineno)
        if not same_structure(_expected_tree(source, candidate), new_tree, index):
            continue
        return PerturbationResult(
            CONCEPT,
            code,
            spans,
            details={
                "lines": [candidate.first.lineno, candidate.second.lineno],
                "statements": [statement_text(analysis, candidate.first), statement_text(analysis, candidate.second)],
                "candidates": len(candidates),
            },
        )
    return PerturbationResult.not_applicable(CONCEPT, "no swap of independent statements could be verified")
