"""If/else structure: which ``if`` statements and conditional expressions have an ``else``, with the
exact text positions a rewrite needs (header colon, ``else`` keyword, block texts).

An ``if``/``elif`` link is *flippable* when its ``else`` is a real ``else:`` block. In
``if a: A elif b: B else: C`` the first link's "else" is the ``elif`` (a nested ``If`` node in ``ast``);
only the ``elif b`` link, whose else-block is ``C``, can swap its branches in place.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from procure_trl.analysis.spans import SourceMap, Span


@dataclass(frozen=True)
class IfElseSite:
    """One ``if``/``elif`` with an ``else`` block, or one conditional expression ``a if c else b``."""

    kind: str  # "if", "elif" or "expression"
    node: ast.AST  # the ast.If / ast.IfExp
    line: int
    condition: str  # source text of the condition
    in_elif_chain: bool  # the if statement has elif links (or is one)
    test_span: Span
    body_span: Span  # statement: the text after the header colon up to the end of the last statement
    orelse_span: Span  # statement: the text after ``else:``; expression: the else-operand

    def to_dict(self) -> dict:
        return {"kind": self.kind, "line": self.line, "condition": self.condition, "in_elif_chain": self.in_elif_chain}


def skip_trivia(source: str, i: int, stop: int | None = None, extra: str = "") -> int:
    """Index of the first character at or after ``i`` that is not whitespace, a line continuation, a
    comment or one of ``extra`` (only valid between tokens, where ``#`` always starts a comment)."""
    stop = len(source) if stop is None else stop
    while i < stop:
        ch = source[i]
        if ch in " \t\r\n\f\\" or ch in extra:
            i += 1
        elif ch == "#":
            while i < stop and source[i] not in "\r\n":
                i += 1
        else:
            break
    return i


def _header_colon(source: str, after_test: int) -> int:
    """Offset of the ``:`` ending an ``if``/``elif``/``else`` header whose condition ends at ``after_test``."""
    i = skip_trivia(source, after_test, extra=")")
    if source[i : i + 1] != ":":
        raise ValueError(f"expected ':' at offset {i}, found {source[i:i+10]!r}")
    return i


def _is_elif(source: str, smap: SourceMap, node: ast.If) -> bool:
    start = smap.offset(node.lineno, node.col_offset)
    return source.startswith("elif", start)


_ELSE = re.compile(r"else\b")


def if_else_sites(tree: ast.AST, smap: SourceMap) -> list[IfElseSite]:
    """All flippable if/else statements and conditional expressions of ``tree``, in source order."""
    source = smap.source
    sites: list[IfElseSite] = []
    elif_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
            if _is_elif(source, smap, node.orelse[0]):
                elif_nodes.add(id(node.orelse[0]))
                elif_nodes.add(id(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and node.orelse:
            first = node.orelse[0]
            if (
                isinstance(first, ast.If)
                and len(node.orelse) == 1
                and id(first) in elif_nodes
                and _is_elif(source, smap, first)
            ):
                continue  # its else is an elif: not a block we can swap in place
            test_span = smap.node_span(node.test)
            colon = _header_colon(source, test_span[1])
            body_end = smap.statement_span(node.body[-1])[1]
            else_at = skip_trivia(source, body_end, extra=";")
            if not _ELSE.match(source, else_at):
                continue  # should not happen for valid code; never guess
            else_colon = skip_trivia(source, else_at + 4)
            if source[else_colon : else_colon + 1] != ":":
                continue
            orelse_end = smap.statement_span(node.orelse[-1])[1]
            kind = "elif" if _is_elif(source, smap, node) else "if"
            sites.append(
                IfElseSite(
                    kind=kind,
                    node=node,
                    line=node.lineno,
                    condition=source[test_span[0] : test_span[1]],
                    in_elif_chain=id(node) in elif_nodes,
                    test_span=test_span,
                    body_span=(colon + 1, body_end),
                    orelse_span=(else_colon + 1, orelse_end),
                )
            )
        elif isinstance(node, ast.IfExp):
            test_span = smap.node_span(node.test)
            sites.append(
                IfElseSite(
                    kind="expression",
                    node=node,
                    line=node.lineno,
                    condition=source[test_span[0] : test_span[1]],
                    in_elif_chain=False,
                    test_span=test_span,
                    body_span=smap.node_span(node.body),
                    orelse_span=smap.node_span(node.orelse),
                )
            )
    sites.sort(key=lambda s: s.test_span)
    return sites
