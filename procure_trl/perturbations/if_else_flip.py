"""``if_else_flip``: negate the condition of an if/else and swap its branches.

``if c: A else: B`` becomes ``if <not c>: B else: A``; a conditional expression ``A if c else B``
becomes ``B if <not c> else A``; in an ``elif`` chain, the link whose else is an ``else:`` block flips.

The negation is exact, whatever the operands' types:

* ``not x`` -> ``x``; ``a and b`` -> ``<not a> or <not b>`` (De Morgan; same evaluation order and
  short-circuiting);
* ``==``/``!=``, ``is``/``is not``, ``in``/``not in`` -> their complement (Python defines one as the
  negation of the other);
* ``<``, ``<=``, ``>``, ``>=`` -> the complement only when both operands provably hold ints (or both
  strs): for floats (``nan``) or sets ``not (a < b)`` differs from ``a >= b``;
* anything else -> ``not x`` / ``not (...)``.

The rewrite is a set of span edits (conditions keep their comments and line breaks), and the result is
checked against the same rewrite done on the ``ast``.
"""

from __future__ import annotations

import ast
import copy
import random
from collections.abc import Iterable
from dataclasses import dataclass

from procure_trl.analysis.branches import IfElseSite, if_else_sites, skip_trivia
from procure_trl.analysis.program import load_program
from procure_trl.analysis.scopes import ScopeAnalysis
from procure_trl.analysis.spans import Edit, SourceMap, apply_edits, same_structure, top_level_index
from procure_trl.analysis.values import INT, STR, expression_kind, kinds_at
from procure_trl.concepts import Concept
from procure_trl.perturbations.base import PerturbationResult, pick_sites

CONCEPT = Concept.IF_ELSE_FLIP

_ALWAYS_COMPLEMENT = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In,
}
_ORDER_COMPLEMENT = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt}
_OP_TEXT = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
}
# Expressions that read fine after "not " without parentheses.
_ATOMS = (ast.Name, ast.Call, ast.Attribute, ast.Subscript, ast.Constant, ast.List, ast.Tuple, ast.Dict,
          ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.JoinedStr)
# Operands that need parentheses when moved into the body position of ``a if c else b``.
_LOW_PRECEDENCE = (ast.IfExp, ast.Lambda, ast.NamedExpr, ast.Yield, ast.YieldFrom)


@dataclass
class _Context:
    source: str
    smap: SourceMap
    analysis: ScopeAnalysis
    site: ast.AST

    @property
    def kinds(self) -> dict[str, str]:
        """Names known to hold int/str where the condition is evaluated (computed only when needed)."""
        return kinds_at(self.analysis, self.site)

    @property
    def shadowed(self) -> frozenset[str]:
        return self.analysis.shadowed_builtins


def _complement(compare: ast.Compare, ctx: _Context) -> type[ast.cmpop] | None:
    """The operator class whose result is exactly ``not compare``, or None."""
    if len(compare.ops) != 1:
        return None
    op = type(compare.ops[0])
    if op in _ALWAYS_COMPLEMENT:
        return _ALWAYS_COMPLEMENT[op]
    left = expression_kind(compare.left, ctx.kinds, ctx.shadowed)
    right = expression_kind(compare.comparators[0], ctx.kinds, ctx.shadowed)
    if left is not None and left == right and left in (INT, STR):
        return _ORDER_COMPLEMENT[op]
    return None


def negate_ast(node: ast.expr, ctx: _Context) -> ast.expr:
    """The reference negation on the ``ast`` (the text edits must produce exactly this tree)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return node.operand
    if isinstance(node, ast.BoolOp):
        op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return ast.BoolOp(op=op, values=[negate_ast(v, ctx) for v in node.values])
    if isinstance(node, ast.Compare):
        new_op = _complement(node, ctx)
        if new_op is not None:
            return ast.Compare(left=node.left, ops=[new_op()], comparators=node.comparators)
    return ast.UnaryOp(op=ast.Not(), operand=node)


def _open_paren(node: ast.AST, ctx: _Context) -> int | None:
    """Offset of the ``(`` that directly wraps ``node`` in the source, or None."""
    start, end = ctx.smap.node_span(node)
    i = start - 1
    while i >= 0 and ctx.source[i] in " \t\r\n\\":
        i -= 1
    if i < 0 or ctx.source[i] != "(":
        return None
    j = skip_trivia(ctx.source, end)
    return i if ctx.source[j : j + 1] == ")" else None


def _parenthesized(node: ast.AST, ctx: _Context) -> bool:
    """True when ``node`` is directly wrapped in parentheses in the source."""
    return _open_paren(node, ctx) is not None


def _find_operator(ctx: _Context, start: int, end: int, words: tuple[str, ...]) -> tuple[int, int]:
    """Span of the operator token (one of ``words``) in the gap ``source[start:end]`` between operands."""
    i = skip_trivia(ctx.source, start, end, extra="()")
    for word in sorted(words, key=len, reverse=True):
        if word in ("is not", "not in"):
            first, second = word.split()
            if ctx.source.startswith(first, i):
                j = skip_trivia(ctx.source, i + len(first), end)
                if j > i + len(first) and ctx.source.startswith(second, j):
                    return i, j + len(second)
        elif ctx.source.startswith(word, i):
            return i, i + len(word)
    raise ValueError(f"operator {words} not found at offset {i}: {ctx.source[i:i+10]!r}")


def _negation_edits(node: ast.expr, ctx: _Context) -> tuple[list[Edit], str]:
    """Edits inside ``node``'s text that turn it into its negation, and the precedence of the result
    (``"or"``, ``"and"``, ``"not"`` or ``"atom"``)."""
    start, end = ctx.smap.node_span(node)
    source = ctx.source
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner_start = skip_trivia(source, start + 3)
        operand = node.operand
        level = "atom" if _parenthesized(operand, ctx) else _level(operand)
        return [Edit(start, end, source[inner_start:end])], level
    if isinstance(node, ast.BoolOp):
        new_op = "or" if isinstance(node.op, ast.And) else "and"
        old_op = "and" if new_op == "or" else "or"
        edits: list[Edit] = []
        previous_end = None
        for value in node.values:
            v_start, v_end = ctx.smap.node_span(value)
            if previous_end is not None:
                k_start, k_end = _find_operator(ctx, previous_end, v_start, (old_op,))
                edits.append(Edit(k_start, k_end, new_op))
            sub, level = _negation_edits(value, ctx)
            # a negated operand that became "or" needs parentheses inside the new "and" (and, for
            # readability, an "and" inside a new "or" gets them too)
            if level in ("or", "and") and level != new_op and not _parenthesized(value, ctx):
                edits.append(Edit(v_start, v_start, "("))
                edits.extend(sub)
                edits.append(Edit(v_end, v_end, ")"))
            else:
                edits.extend(sub)
            previous_end = v_end
        return edits, new_op
    if isinstance(node, ast.Compare):
        complement = _complement(node, ctx)
        if complement is not None:
            left_end = ctx.smap.node_span(node.left)[1]
            right_start = ctx.smap.node_span(node.comparators[0])[0]
            o_start, o_end = _find_operator(ctx, left_end, right_start, (_OP_TEXT[type(node.ops[0])],))
            return [Edit(o_start, o_end, _OP_TEXT[complement])], "atom"
    if isinstance(node, _ATOMS):
        return [Edit(start, start, "not ")], "not"
    paren = _open_paren(node, ctx)
    if paren is not None:  # "(a < b)" -> "not (a < b)": the source's parentheses already group it
        glued = paren > 0 and (source[paren - 1].isalnum() or source[paren - 1] == "_")  # "if(a < b)"
        return [Edit(paren, paren, " not " if glued else "not ")], "not"
    return [Edit(start, start, "not ("), Edit(end, end, ")")], "not"


def _level(node: ast.AST) -> str:
    if isinstance(node, ast.BoolOp):
        return "and" if isinstance(node.op, ast.And) else "or"
    if isinstance(node, (ast.IfExp, ast.Lambda, ast.NamedExpr)):
        return "or"  # needs parentheses anywhere inside and/or
    return "atom"


def _flip_edits(site: IfElseSite, ctx: _Context) -> list[Edit]:
    source = ctx.source
    edits, _ = _negation_edits(site.node.test, ctx)  # type: ignore[attr-defined]
    body_text = source[site.body_span[0] : site.body_span[1]]
    orelse_text = source[site.orelse_span[0] : site.orelse_span[1]]
    if site.kind == "expression":
        node: ast.IfExp = site.node  # type: ignore[assignment]
        if isinstance(node.orelse, _LOW_PRECEDENCE):
            orelse_text = f"({orelse_text})"
        if isinstance(node.body, _LOW_PRECEDENCE):
            body_text = f"({body_text})"
    edits.append(Edit(site.body_span[0], site.body_span[1], orelse_text))
    edits.append(Edit(site.orelse_span[0], site.orelse_span[1], body_text))
    return edits


def _expected_tree(source: str, chosen: list[tuple[IfElseSite, _Context]]) -> ast.Module:
    """The original tree with the chosen sites flipped on the ``ast`` -- the specification."""
    tree = ast.parse(source)
    nodes = [_node_at_site(tree, site) for site, _ in chosen]  # found before any flip moves a branch
    for node, (_, ctx) in zip(nodes, chosen):
        node.test = negate_ast(copy.deepcopy(node.test), ctx)
        node.body, node.orelse = node.orelse, node.body
    return tree


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def if_else_flip(
    source: str, seed: int = 0, *, protected_names: Iterable[str] = (), sites: int = 1
) -> PerturbationResult:
    """Flip ``sites`` if/else statements (chosen with ``seed`` among all flippable ones) of ``source``.

    With ``sites > 1`` the flipped statements do not nest (their texts do not overlap), so each flip is
    the one-site flip of its own statement. ``protected_names`` is accepted for a uniform signature;
    flipping renames nothing.
    """
    analysis = load_program(source)
    tree, smap = analysis.tree, analysis.source_map
    candidates = if_else_sites(tree, smap)
    if not candidates:
        return PerturbationResult.not_applicable(
            CONCEPT, "no if statement with an else block and no conditional expression"
        )
    order = list(range(len(candidates)))
    random.Random(seed).shuffle(order)
    reasons = []
    contexts = [_Context(source, smap, analysis, site.node) for site in candidates]
    edits: dict[int, list[Edit]] = {}

    def verified(index: int) -> bool:
        """The flip alone, done on the text, gives the flip done on the ``ast`` (edits kept in ``edits``)."""
        if index in edits:
            return bool(edits[index])
        site, ctx = candidates[index], contexts[index]
        edits[index] = []
        try:
            site_edits = _flip_edits(site, ctx)
            new_tree = ast.parse(apply_edits(source, site_edits)[0])
        except (ValueError, SyntaxError) as error:
            reasons.append(f"line {site.line}: {error}")
            return False
        if not same_structure(_expected_tree(source, [(site, ctx)]), new_tree, top_level_index(tree, site.line)):
            reasons.append(f"line {site.line}: text rewrite does not match the ast rewrite")
            return False
        edits[index] = site_edits
        return True

    def apart(i: int, j: int) -> bool:  # a flip inside another flipped statement would edit the same text
        return not _overlaps(smap.node_span(candidates[i].node), smap.node_span(candidates[j].node))

    chosen = [(candidates[i], contexts[i], edits[i]) for i in pick_sites(order, sites, verified, apart)]
    if not chosen:
        return PerturbationResult.not_applicable(CONCEPT, "no flip could be verified: " + "; ".join(reasons[:3]))
    if len(chosen) < sites:
        return PerturbationResult.not_applicable(
            CONCEPT, f"only {len(chosen)} if/else site(s) can be flipped together; {sites} were asked for")
    code, spans = apply_edits(source, [e for _, _, edits in chosen for e in edits])
    new_tree = ast.parse(code)
    if ast.dump(_expected_tree(source, [(site, ctx) for site, ctx, _ in chosen])) != ast.dump(new_tree):
        return PerturbationResult.not_applicable(CONCEPT, f"the {sites} flips together do not match the ast rewrite")
    details = [
        {
            "kind": site.kind,
            "line": site.line,
            "condition": site.condition,
            "negated_condition": _negated_text(code, new_tree, site),
            "in_elif_chain": site.in_elif_chain,
        }
        for site, _, _ in chosen
    ]
    out: dict[str, object] = dict(details[0]) if sites == 1 else {"flips": details}
    out["candidates"] = len(candidates)
    out["sites"] = len(chosen)
    return PerturbationResult(CONCEPT, code, spans, details=out)


def _negated_text(code: str, tree: ast.Module, site: IfElseSite) -> str:
    """The new condition's text ("" when an earlier flip on the same line moved the site's column)."""
    try:
        return ast.get_source_segment(code, _flipped_condition(tree, site)) or ""
    except AssertionError:
        return ""


def _flipped_condition(tree: ast.Module, site: IfElseSite) -> ast.AST:
    """The condition of the flipped node in the new tree (same line/column: text before it is unchanged)."""
    return _node_at_site(tree, site).test


def _node_at_site(tree: ast.Module, site: IfElseSite) -> ast.If | ast.IfExp:
    """The node of ``tree`` with the site's type and start position (the text before a flip is unchanged)."""
    for node in ast.walk(tree):
        if type(node) is type(site.node) and (node.lineno, node.col_offset) == (site.node.lineno, site.node.col_offset):  # type: ignore[attr-defined]
            return node  # type: ignore[return-value]
    raise AssertionError("flipped node not found again")  # unreachable: same text before the site
