"""``independent_swap``: swap two statements of one block that commute with each other and with every
statement between them (adjacent or not).

Candidates come from :func:`procure_trl.analysis.swaps.independent_pairs` (independence of data, control
and effects: :func:`procure_trl.analysis.effects.independent`);
the swap exchanges the two statements' texts in place (comments and blank lines between them stay where
they are) and is checked against the same swap done on the ``ast``.
"""

from __future__ import annotations

import ast
import functools
import random
from collections.abc import Iterable

from procure_trl.analysis.program import load_program
from procure_trl.analysis.scopes import ScopeAnalysis
from procure_trl.analysis.spans import Edit, apply_edits, same_structure, top_level_index
from procure_trl.analysis.swaps import SwapCandidate, independent_pairs
from procure_trl.concepts import Concept
from procure_trl.perturbations.base import PerturbationResult, pick_sites

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


def _expected_tree(source: str, chosen: list[SwapCandidate]) -> ast.Module:
    """The original tree with the chosen statement pairs swapped on the ``ast`` -- the specification."""
    tree = ast.parse(source)
    swaps = []
    for candidate in chosen:  # find every list first: a swap moves statements another lookup would match
        first = candidate.first
        for node in ast.walk(tree):
            value = getattr(node, candidate.block.field, None)
            i, j = candidate.index, candidate.partner
            if isinstance(value, list) and len(value) > j:
                stmt = value[i]
                if isinstance(stmt, ast.stmt) and (stmt.lineno, stmt.col_offset, type(stmt)) == (
                    first.lineno, first.col_offset, type(first)
                ):
                    swaps.append((value, i, j))
                    break
        else:
            raise AssertionError("swapped statements not found again")  # unreachable: same source
    for value, i, j in swaps:
        value[i], value[j] = value[j], value[i]
    return tree


def _reach(candidate: SwapCandidate, analysis: ScopeAnalysis) -> tuple[int, int]:
    """The text from the first statement's start to the second's end: what the swap rewrites."""
    smap = analysis.source_map
    return smap.statement_span(candidate.first)[0], smap.statement_span(candidate.second)[1]


def _extent(candidate: SwapCandidate, analysis: ScopeAnalysis) -> tuple[int, int]:
    """The text of the candidate's whole block."""
    smap = analysis.source_map
    return smap.statement_span(candidate.block.statements[0])[0], smap.statement_span(candidate.block.statements[-1])[1]


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _compatible(a: SwapCandidate, b: SwapCandidate, analysis: ScopeAnalysis) -> bool:
    """Two swaps that can be made together and still read as two swaps: disjoint ranges of one block,
    or blocks that do not nest (a reordered block whose statements also changed inside is no longer
    the same statements in another order)."""
    if _overlap(_reach(a, analysis), _reach(b, analysis)):
        return False
    if a.block.statements is b.block.statements:
        return True
    return not (
        _overlap(_reach(a, analysis), _extent(b, analysis)) or _overlap(_reach(b, analysis), _extent(a, analysis))
    )


def independent_swap(
    source: str, seed: int = 0, *, protected_names: Iterable[str] = (), sites: int = 1
) -> PerturbationResult:
    """Swap ``sites`` pairs of commuting statements of ``source`` (chosen with ``seed``).

    With ``sites > 1`` the pairs do not overlap: the text from one pair's first statement to its second
    holds no statement of another pair, so each pair's statements only trade places with each other, and
    a pair never sits inside the block of another.
    ``protected_names`` is accepted for a uniform signature; swapping renames nothing.
    """
    analysis = load_program(source)
    candidates = independent_pairs(analysis)
    if not candidates:
        return PerturbationResult.not_applicable(CONCEPT, "no two statements of one block are independent")
    order = list(range(len(candidates)))
    random.Random(seed).shuffle(order)

    @functools.cache
    def verified(index: int) -> bool:
        """The swap alone, done on the text, gives the swap done on the ``ast``."""
        candidate = candidates[index]
        code, _ = apply_edits(source, _swap_edits(candidate, analysis))
        try:
            new_tree = ast.parse(code)
        except SyntaxError:
            return False
        top = top_level_index(analysis.tree, candidate.first.lineno)
        return same_structure(_expected_tree(source, [candidate]), new_tree, top)

    picked = pick_sites(order, sites, verified, lambda i, j: _compatible(candidates[i], candidates[j], analysis))
    chosen = [candidates[i] for i in picked]
    if not chosen:
        return PerturbationResult.not_applicable(CONCEPT, "no swap of independent statements could be verified")
    if len(chosen) < sites:
        return PerturbationResult.not_applicable(
            CONCEPT, f"only {len(chosen)} non-overlapping pair(s) of independent statements; {sites} were asked for")
    code, spans = apply_edits(source, [e for c in chosen for e in _swap_edits(c, analysis)])
    if ast.dump(_expected_tree(source, chosen)) != ast.dump(ast.parse(code)):
        return PerturbationResult.not_applicable(CONCEPT, f"the {sites} swaps together do not match the ast rewrite")
    pairs = [
        {"lines": [c.first.lineno, c.second.lineno],
         "statements": [statement_text(analysis, c.first), statement_text(analysis, c.second)]}
        for c in chosen
    ]
    details: dict[str, object] = dict(pairs[0]) if sites == 1 else {"swaps": pairs}
    details.update(candidates=len(candidates), sites=len(chosen))
    return PerturbationResult(CONCEPT, code, spans, details=details)
