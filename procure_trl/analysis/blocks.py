"""Statement blocks: every list of statements that runs in sequence (a function body, a loop body, an
``else`` block...), with the scope it runs in and whether it sits inside a ``try``."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from procure_trl.analysis.scopes import Scope, ScopeAnalysis, ScopeKind


@dataclass(frozen=True)
class Block:
    statements: list[ast.stmt]
    scope: Scope
    inside_try: bool  # a statement of the block may raise into a handler of the same function
    owner: ast.AST  # the node whose field holds the list
    field: str  # e.g. "body", "orelse", "finalbody"


def iter_blocks(analysis: ScopeAnalysis) -> list[Block]:
    """All statement blocks of the program, outermost first."""
    blocks: list[Block] = []

    def walk(owner: ast.AST, scope: Scope, inside_try: bool) -> None:
        for name, value in ast.iter_fields(owner):
            if not (isinstance(value, list) and value and isinstance(value[0], ast.stmt)):
                if isinstance(value, list):
                    for item in value:
                        if isinstance(item, (ast.ExceptHandler, ast.match_case)):
                            walk(item, scope, inside_try)
                continue
            in_try = inside_try or (isinstance(owner, (ast.Try, getattr(ast, "TryStar", ast.Try))) and name == "body")
            blocks.append(Block(value, scope, in_try, owner, name))
            for stmt in value:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    inner = analysis.scope_of_node[id(stmt)]
                    walk(stmt, inner, False)
                else:
                    walk(stmt, scope, in_try)

    walk(analysis.tree, analysis.module, False)
    return blocks


def is_class_body(block: Block) -> bool:
    return block.scope.kind is ScopeKind.CLASS and isinstance(block.owner, ast.ClassDef)
