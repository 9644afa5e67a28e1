"""Which statements of one block may trade places: the candidates of ``independent_swap``.

Two statements ``i < j`` of one block may swap when each of them commutes with every statement between
them and with each other: the swap moves ``i`` down past ``i+1 .. j`` and ``j`` up past ``i .. j-1``, so
exactly these pairs change their relative order (the statements between keep theirs). Two statements
commute when :func:`procure_trl.analysis.effects.independent` says so, or when both are *exclusive
guards* (:func:`exclusive_guards`): ``if n == 0: return 0`` and ``if n == 1: return 1``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass

from procure_trl.analysis.blocks import Block, is_class_body, iter_blocks
from procure_trl.analysis.effects import EffectAnalyzer, independent
from procure_trl.analysis.scopes import ScopeAnalysis


@dataclass(frozen=True)
class SwapCandidate:
    """Two statements of one block that may be swapped: ``block.statements[index]`` and ``[other]``."""

    block: Block
    index: int
    other: int = -1  # -1: the next statement (``index + 1``)

    @property
    def partner(self) -> int:
        return self.index + 1 if self.other < 0 else self.other

    @property
    def first(self) -> ast.stmt:
        return self.block.statements[self.index]

    @property
    def second(self) -> ast.stmt:
        return self.block.statements[self.partner]

    @property
    def adjacent(self) -> bool:
        return self.partner == self.index + 1


#: Farthest apart two swapped statements of one block may be (in statements). Every block of HumanEval and
#: MBPP is shorter, so there it allows every pair; in a long straight-line function it keeps the search
#: linear (each statement is checked against at most this many neighbours on each side) and the number of
#: candidates at most this many per statement.
MAX_SWAP_DISTANCE = 32

#: statements that end their block's straight-line flow; moving one above another would make it dead code
_JUMPS = (ast.Return, ast.Raise, ast.Break, ast.Continue)


def _swappable_shape(stmt: ast.stmt) -> bool:
    if getattr(stmt, "decorator_list", None):
        return False  # decorators sit above the ``def`` line, outside the node's span
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return False  # a docstring (or a bare constant) stays where it is
    return True


# -- exclusive guards ------------------------------------------------------------------------------

_LEAVES_LOOP_OR_SUSPENDS = (ast.Break, ast.Continue, ast.Yield, ast.YieldFrom, ast.Await)


def _leaves_function(body: list[ast.stmt]) -> bool:
    """The block ends in ``return``/``raise`` and nothing in it jumps elsewhere: running it leaves the function."""
    if not isinstance(body[-1], (ast.Return, ast.Raise)):
        return False
    return not any(isinstance(node, _LEAVES_LOOP_OR_SUSPENDS) for stmt in body for node in ast.walk(stmt))


def _equality_test(test: ast.expr, shadowed: frozenset[str]) -> tuple[str, object] | None:
    """``(operand dump, constant)`` for ``x == c`` / ``c == x`` with ``x`` a name or ``len(name)`` and ``c``
    an int (not bool) or str constant; None for any other condition."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    left, right = test.left, test.comparators[0]
    if isinstance(left, ast.Constant):
        left, right = right, left
    if not (isinstance(right, ast.Constant) and type(right.value) in (int, str)):
        return None
    is_len = (isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "len"
              and "len" not in shadowed and len(left.args) == 1 and not left.keywords
              and isinstance(left.args[0], ast.Name))
    if not (isinstance(left, ast.Name) or is_len):
        return None
    return ast.dump(left), right.value


def exclusive_guards(a: ast.stmt, b: ast.stmt, shadowed: frozenset[str] = frozenset()) -> bool:
    """Both are ``if x == c: ...`` (no ``else``) with bodies that always leave the function, the same
    operand ``x`` (a name or ``len(name)``) and two different constants of one type (int or str).

    No builtin value equals two different ints (or strs), so at most one body runs; the conditions have
    no effects and evaluate the same operand first, so if one raises the other raises the same error.
    The two guards therefore commute: ``if n == 0: return 0`` / ``if n == 1: return 1``.
    """
    if not (isinstance(a, ast.If) and isinstance(b, ast.If)):
        return False
    if not all(not s.orelse and _leaves_function(s.body) for s in (a, b)):
        return False
    ta, tb = _equality_test(a.test, shadowed), _equality_test(b.test, shadowed)
    if ta is None or tb is None:
        return False
    return ta[0] == tb[0] and type(ta[1]) is type(tb[1]) and ta[1] != tb[1]


# -- candidates --------------------------------------------------------------------------------------


def _live_statements(block: Block) -> int:
    """How many statements of ``block`` can run: the ones after a return/raise/break/continue never do."""
    for i, stmt in enumerate(block.statements):
        if isinstance(stmt, _JUMPS):
            return i
    return len(block.statements)


def _commutation(
    analyzer: EffectAnalyzer, analysis: ScopeAnalysis, block: Block, live: int
) -> Callable[[int, int], bool]:
    """``commute(i, j)``: statements ``i`` and ``j`` (``i < j < live``) may trade places; each pair is decided
    once (the forward and backward scans of :func:`independent_pairs` ask for many of the same pairs)."""
    statements = block.statements[:live]
    effects = [analyzer.effects(s, block.scope) for s in statements]
    shadowed = analysis.shadowed_builtins

    @functools.cache
    def commute(i: int, j: int) -> bool:
        ok, _ = independent(effects[i], effects[j], inside_try=block.inside_try)
        return ok or exclusive_guards(statements[i], statements[j], shadowed)

    return commute


def _first_conflicts(commute: Callable[[int, int], bool], live: int) -> tuple[list[int], list[int]]:
    """``(after, before)``: ``after[i]`` is the first statement past ``i`` (at most :data:`MAX_SWAP_DISTANCE`
    on) that does not commute with ``i``, or the end of that window; ``before[j]`` the last statement before
    ``j`` (at most :data:`MAX_SWAP_DISTANCE` back) that does not commute with ``j``, or one before the window.

    A scan stops at the first conflict, so dependent code costs about one check per statement and fully
    independent code ``MAX_SWAP_DISTANCE`` checks per statement: linear in the block's length.
    """
    after, before = [], []
    for i in range(live):
        end = min(live, i + MAX_SWAP_DISTANCE + 1)
        after.append(next((k for k in range(i + 1, end) if not commute(i, k)), end))
    for j in range(live):
        start = max(0, j - MAX_SWAP_DISTANCE)
        before.append(next((k for k in range(j - 1, start - 1, -1) if not commute(k, j)), start - 1))
    return after, before


def independent_pairs(analysis: ScopeAnalysis, *, adjacent_only: bool = False) -> list[SwapCandidate]:
    """Every pair of statements, in any block, that can be swapped (adjacent pairs first, block by block),
    at most :data:`MAX_SWAP_DISTANCE` statements apart.

    ``i < j`` qualify when ``j`` comes before the first statement past ``i`` that ``i`` does not commute
    with (so ``i`` commutes with ``i+1 .. j``) and the last statement before ``j`` that ``j`` does not
    commute with comes before ``i`` (so ``j`` commutes with ``i .. j-1``): the rule of the module docstring,
    found with two scans per statement instead of checking every statement between every pair.
    ``adjacent_only`` keeps the pairs of neighbouring statements.
    """
    analyzer = EffectAnalyzer(analysis, analysis.shadowed_builtins)
    adjacent: list[SwapCandidate] = []
    distant: list[SwapCandidate] = []
    for block in iter_blocks(analysis):
        if is_class_body(block) or len(block.statements) < 2:
            continue  # class attribute order is observable (vars(C), dataclass fields)
        live = _live_statements(block)  # dead code after a jump is left alone
        if live < 2:
            continue
        after, before = _first_conflicts(_commutation(analyzer, analysis, block, live), live)
        statements = block.statements
        dumps: dict[int, str] = {}

        # this iteration's table and statements bound as defaults (the function is called within the iteration only)
        def dump(index: int, dumps: dict[int, str] = dumps, statements: list[ast.stmt] = statements) -> str:
            if index not in dumps:
                dumps[index] = ast.dump(statements[index])
            return dumps[index]

        for i in range(live - 1):
            if not _swappable_shape(statements[i]):
                continue
            for j in range(i + 1, after[i]):
                if before[j] >= i or not _swappable_shape(statements[j]) or dump(i) == dump(j):
                    continue  # (swapping identical statements changes nothing)
                if j == i + 1:
                    adjacent.append(SwapCandidate(block, i))
                elif not adjacent_only:
                    distant.append(SwapCandidate(block, i, j))
    return adjacent + distant
