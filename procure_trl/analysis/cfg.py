"""A small statement-level control-flow graph per function body.

Nodes are statements and the headers of compound statements: an ``if``/``while`` test, a ``for`` loop's
"next item" step and, separately, the binding of its target (so the target is defined only on the path
into the body), a ``with`` header, an exception handler, a ``match`` case. Edges follow Python's
semantics for ``break``, ``continue``, ``return``, ``raise``, loop ``else`` blocks and ``try`` (every
statement of a ``try`` body may jump to each handler and to the ``finally`` block).

:func:`node_parts` tells which expressions each node evaluates -- what data-flow analyses need to map
identifier occurrences onto nodes.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field

# the try statements: ``try/except*`` (ast.TryStar) exists from Python 3.11 on
if sys.version_info >= (3, 11):
    TRY_STATEMENTS: tuple[type[ast.Try] | type[ast.TryStar], ...] = (ast.Try, ast.TryStar)
else:
    TRY_STATEMENTS = (ast.Try,)

ENTRY = "entry"
EXIT = "exit"


@dataclass
class CFGNode:
    id: int
    kind: str  # entry, exit, stmt, if, while, for_next, for_target, with, try, handler, match, case
    node: ast.AST | None
    succ: list[int] = field(default_factory=list)
    pred: list[int] = field(default_factory=list)

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 0)


@dataclass
class CFG:
    """Control-flow graph of one function body (or any statement list)."""

    nodes: list[CFGNode]
    entry: int
    exit: int

    def edges(self) -> list[tuple[int, int]]:
        return [(n.id, s) for n in self.nodes for s in n.succ]

    def to_dict(self) -> dict:
        """JSON-able form: nodes (id, kind, line) and edges."""
        return {
            "nodes": [{"id": n.id, "kind": n.kind, "line": n.line} for n in self.nodes],
            "edges": [list(e) for e in self.edges()],
        }


@dataclass
class _Loop:
    continue_to: int
    breaks: list[int] = field(default_factory=list)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[CFGNode] = []
        self.loops: list[_Loop] = []
        self.raise_targets: list[list[int]] = []  # innermost try: handler/finally entries
        self.entry = self._add(ENTRY, None)
        self.exit = self._add(EXIT, None)

    def _add(self, kind: str, node: ast.AST | None) -> int:
        n = CFGNode(len(self.nodes), kind, node)
        self.nodes.append(n)
        return n.id

    def _link(self, sources: list[int], target: int) -> None:
        for s in sources:
            if target not in self.nodes[s].succ:
                self.nodes[s].succ.append(target)
                self.nodes[target].pred.append(s)

    def _node(self, kind: str, node: ast.AST, preds: list[int]) -> int:
        n = self._add(kind, node)
        self._link(preds, n)
        if self.raise_targets:
            # inside a try body this step may raise into a handler -- before it has done anything (the
            # state of its predecessors) or after (its own state): link both
            for target in self.raise_targets[-1]:
                self._link(preds, target)
                self._link([n], target)
        return n

    def seq(self, stmts: list[ast.stmt], preds: list[int]) -> list[int]:
        for stmt in stmts:
            preds = self.stmt(stmt, preds)
        return preds

    def stmt(self, s: ast.stmt, preds: list[int]) -> list[int]:
        if isinstance(s, ast.If):
            n = self._node("if", s, preds)
            body = self.seq(s.body, [n])
            orelse = self.seq(s.orelse, [n]) if s.orelse else [n]
            return body + orelse
        if isinstance(s, ast.While):
            n = self._node("while", s, preds)
            self.loops.append(_Loop(n))
            body = self.seq(s.body, [n])
            self._link(body, n)
            loop = self.loops.pop()
            orelse = self.seq(s.orelse, [n]) if s.orelse else [n]
            return orelse + loop.breaks
        if isinstance(s, (ast.For, ast.AsyncFor)):
            # the iterable is evaluated once, before the loop: a plain step
            start = self._node("for_iter", s, preds)
            head = self._node("for_next", s, [start])
            target = self._node("for_target", s, [head])
            self.loops.append(_Loop(head))
            body = self.seq(s.body, [target])
            self._link(body, head)
            loop = self.loops.pop()
            orelse = self.seq(s.orelse, [head]) if s.orelse else [head]
            return orelse + loop.breaks
        if isinstance(s, (ast.With, ast.AsyncWith)):
            n = self._node("with", s, preds)
            return self.seq(s.body, [n])
        if isinstance(s, TRY_STATEMENTS):
            return self._try(s, preds)
        if isinstance(s, ast.Match):
            n = self._node("match", s, preds)
            exits: list[int] = []
            previous = [n]
            for case in s.cases:
                c = self._node("case", case, previous)
                exits += self.seq(case.body, [c])
                previous = [c]  # pattern (or guard) failed: try the next case
            return exits + previous
        n = self._node("stmt", s, preds)
        if isinstance(s, ast.Break) and self.loops:
            self.loops[-1].breaks.append(n)
            return []
        if isinstance(s, ast.Continue) and self.loops:
            self._link([n], self.loops[-1].continue_to)
            return []
        if isinstance(s, (ast.Return, ast.Raise)):
            self._link([n], self.exit)
            return []
        return [n]

    def _try(self, s: ast.Try, preds: list[int]) -> list[int]:
        t = self._node("try", s, preds)
        handler_ids = [self._add("handler", h) for h in s.handlers]
        final_entry = self._add("finally", s) if s.finalbody else None
        targets = handler_ids + ([final_entry] if final_entry is not None else [self.exit])
        self.raise_targets.append(targets)
        body = self.seq(s.body, [t])
        self.raise_targets.pop()
        exits = self.seq(s.orelse, body) if s.orelse else body
        for h_id, handler in zip(handler_ids, s.handlers):
            exits += self.seq(handler.body, [h_id])
        if final_entry is not None:
            self._link(exits, final_entry)
            after = self.seq(s.finalbody, [final_entry])
            self._link(after, self.exit)  # the finally block may re-raise what it interrupted
            return after
        return exits


def build_cfg(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Module) -> CFG:
    """The control-flow graph of a function's body (or a module's top-level statements)."""
    builder = _Builder()
    ends = builder.seq(function.body, [builder.entry])
    builder._link(ends, builder.exit)
    return CFG(builder.nodes, builder.entry, builder.exit)


def node_parts(cfg_node: CFGNode) -> list[ast.AST]:
    """The syntax a CFG node evaluates (what its identifier occurrences belong to)."""
    node = cfg_node.node
    kind = cfg_node.kind
    if node is None or kind in ("try", "finally", "for_next"):
        return []
    if kind in ("if", "while"):
        return [node.test]  # type: ignore[attr-defined]
    if kind == "for_iter":
        return [node.iter]  # type: ignore[attr-defined]
    if kind == "for_target":
        return [node.target]  # type: ignore[attr-defined]
    if kind == "with":
        return [part for item in node.items for part in (item.context_expr, item.optional_vars) if part is not None]  # type: ignore[attr-defined]
    if kind == "handler":
        return [node.type] if node.type is not None else []  # type: ignore[attr-defined]
    if kind == "match":
        return [node.subject]  # type: ignore[attr-defined]
    if kind == "case":
        return [node.pattern] + ([node.guard] if node.guard is not None else [])  # type: ignore[attr-defined]
    return [node]
