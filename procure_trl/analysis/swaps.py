"""Which adjacent statements may trade places: the candidates of ``independent_swap``."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from procure_trl.analysis.blocks import Block, is_class_body, iter_blocks
from procure_trl.analysis.effects import EffectAnalyzer, independent
from procure_trl.analysis.scopes import ScopeAnalysis


@dataclass(frozen=True)
class SwapCandidate:
    """Two adjacent statements of one block that may be swapped."""

    block: Block
    index: int  # the statements are block.statements[index] and [index + 1]

    @property
    def first(self) -> ast.stmt:
        return self.block.statements[self.index]

    @property
    def second(self) -> ast.stmt:
        return self.block.statements[self.index + 1]


#: statements that end their block's straight-line flow; moving one above another would make it dead code
_JUMPS = (ast.Return, ast.Raise, ast.Break, ast.Continue)


def _swappable_shape(stmt: ast.stmt) -> bool:
    if getattr(stmt, "decorator_list", None):
        return False  # decorators sit above the ``def`` line, outside the node's span
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return False  # a docstring (or a bare constant) stays where it is
    return True


def independent_pairs(analysis: ScopeAnalysis) -> list[SwapCandidate]:
    """Every pair of adjacent statements, in any block, that can be swapped."""
    analyzer = EffectAnalyzer(analysis, analysis.shadowed_builtins)
    out: list[SwapCandidate] = []
    for block in iter_blocks(analysis):
        if is_class_body(block) or len(block.statements) < 2:
            continue  # class attribute order is observable (vars(C), dataclass fields)
        # statements after a return/raise/break/continue never run: leave dead code alone
        live = len(block.statements)
        for i, stmt in enumerate(block.statements):
            if isinstance(stmt, _JUMPS):
                live = i
                break
        effects = [analyzer.effects(s, block.scope) for s in block.statements[:live]]
        for i in range(live - 1):
            a, b = block.statements[i], block.statements[i + 1]
            if not (_swappable_shape(a) and _swappable_shape(b)):
                continue
            if ast.dump(a) == ast.dump(b):
                continue  # swapping identical statements changes nothing
            ok, _ = independent(effects[i], effects[i + 1], inside_try=block.inside_try)
            if ok:
                out.append(SwapCandidate(block, i))
    return out
