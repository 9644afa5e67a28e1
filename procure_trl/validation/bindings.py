"""Which binding each identifier of a program refers to: a small, self-contained scope resolver.

The validator checks candidates from any generator (rule-based or LLM), so it does not reuse the
perturbation side's analysis: a bug there must not hide itself here. This module follows Python's
scoping rules closely enough to compare two programs of the same shape:

* scopes: the module, functions and lambdas, classes, and comprehensions (each its own scope);
* a name bound anywhere in a scope (assignment, ``for``/``with``/``except`` targets, ``import``,
  ``def``/``class``, parameters, ``del``, walrus, ``match`` captures) is local to it, unless the scope
  declares it ``global``/``nonlocal``; walrus targets in a comprehension bind in the enclosing scope;
* a free name resolves to the nearest enclosing function scope that binds it (class scopes are
  skipped), else to the module, else to the builtins.

A binding is identified by ``(scope_index, name)``: scopes are numbered in pre-order, so two programs
with the same tree shape number their scopes alike. Builtins use scope index ``-1``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: scope index of names that no scope of the program binds (builtins, or undefined names)
BUILTIN_SCOPE = -1

Binding = tuple[int, str]

_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class Scope:
    """One scope of the program."""

    index: int
    kind: str  # "module" | "function" | "class" | "comprehension"
    node: ast.AST
    parent: Scope | None
    bound: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class NameSite:
    """One identifier occurrence: the node, the field holding the identifier, and its binding."""

    node: ast.AST
    field: str  # "id", "arg", "name", "asname", "names[i]", "rest"
    name: str
    scope: int  # index of the scope the occurrence is in
    binding: Binding
    is_definition: bool


def _alias_bound_name(alias: ast.alias) -> str:
    return alias.asname or alias.name.split(".")[0]


class _Collector(ast.NodeVisitor):
    """Pass 1: build the scope tree and the set of names each scope binds."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.scope_of_node: dict[int, Scope] = {}  # id(scope-creating node) -> scope
        self.current: Scope | None = None

    def _new_scope(self, kind: str, node: ast.AST) -> Scope:
        scope = Scope(len(self.scopes), kind, node, self.current)
        self.scopes.append(scope)
        self.scope_of_node[id(node)] = scope
        return scope

    def _bind(self, name: str, scope: Scope | None = None) -> None:
        (scope or self.current).bound.add(name)  # type: ignore[union-attr]

    def _in(self, scope: Scope, nodes) -> None:
        saved, self.current = self.current, scope
        for node in nodes:
            if node is not None:
                self.visit(node)
        self.current = saved

    def visit_Module(self, node: ast.Module) -> None:
        self._in(self._new_scope("module", node), node.body)

    def _visit_arguments_outside(self, args: ast.arguments) -> None:
        # defaults and annotations are evaluated in the enclosing scope
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.visit(arg.annotation)

    def _param_names(self, args: ast.arguments) -> list[str]:
        return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg] if a]

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._visit_arguments_outside(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self._bind(node.name)
        scope = self._new_scope("function", node)
        scope.bound.update(self._param_names(node.args))
        self._in(scope, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_arguments_outside(node.args)
        scope = self._new_scope("function", node)
        scope.bound.update(self._param_names(node.args))
        self._in(scope, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(expr)
        self._bind(node.name)
        self._in(self._new_scope("class", node), node.body)

    def _visit_comprehension(self, node) -> None:
        _visit_comprehension(self, node, lambda n: self._new_scope("comprehension", n))

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._bind(node.id)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self.current
        while scope is not None and scope.kind == "comprehension":
            scope = scope.parent
        self._bind(node.target.id, scope)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._bind(_alias_bound_name(alias))

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global) -> None:
        self.current.globals.update(node.names)  # type: ignore[union-attr]

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.current.nonlocals.update(node.names)  # type: ignore[union-attr]

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._bind(node.rest)
        self.generic_visit(node)


class ScopeInfo:
    """The scopes of a program and the binding of every identifier occurrence in it."""

    def __init__(self, tree: ast.AST) -> None:
        collector = _Collector()
        collector.visit(tree)
        self.scopes = collector.scopes
        self._scope_of_node = collector.scope_of_node
        self.sites: dict[tuple[int, str], NameSite] = {}  # (id(node), field) -> site
        _Resolver(self).visit(tree)

    def resolve(self, name: str, scope: Scope) -> Binding:
        """The binding ``name`` refers to when used in ``scope``."""
        if name in scope.globals:
            return (0, name) if name in self.scopes[0].bound else (BUILTIN_SCOPE, name)
        if name in scope.nonlocals:
            return self._enclosing_function_binding(name, scope.parent) or (BUILTIN_SCOPE, name)
        if name in scope.bound:
            return (0, name) if scope.kind == "module" else (scope.index, name)
        found = self._enclosing_function_binding(name, scope.parent)
        if found is not None:
            return found
        return (0, name) if name in self.scopes[0].bound else (BUILTIN_SCOPE, name)

    def _enclosing_function_binding(self, name: str, scope: Scope | None) -> Binding | None:
        while scope is not None and scope.kind != "module":
            if scope.kind != "class" and name in scope.bound:
                if name in scope.globals:
                    return (0, name) if name in self.scopes[0].bound else (BUILTIN_SCOPE, name)
                if name not in scope.nonlocals:
                    return (scope.index, name)
            scope = scope.parent
        return None

    def site(self, node: ast.AST, field_name: str) -> NameSite | None:
        return self.sites.get((id(node), field_name))

    def scope_of(self, node: ast.AST) -> Scope | None:
        """The scope a scope-creating node (module, def, lambda, class, comprehension) opens."""
        return self._scope_of_node.get(id(node))


class _Resolver(ast.NodeVisitor):
    """Pass 2: record the binding of every identifier occurrence."""

    def __init__(self, info: ScopeInfo) -> None:
        self.info = info
        self.current: Scope | None = None

    def _record(self, node: ast.AST, field_name: str, name: str, is_def: bool, scope: Scope | None = None) -> None:
        scope = scope or self.current
        if scope is None:
            raise ValueError(f"{name!r} (line {getattr(node, 'lineno', '?')}) is outside every scope")
        self.info.sites[(id(node), field_name)] = NameSite(
            node, field_name, name, scope.index, self.info.resolve(name, scope), is_def
        )

    def _in(self, node: ast.AST, children) -> None:
        saved, self.current = self.current, self.info.scope_of(node)
        for child in children:
            if child is not None:
                self.visit(child)
        self.current = saved

    def visit_Module(self, node: ast.Module) -> None:
        self._in(node, node.body)

    def _outside_arguments(self, args: ast.arguments) -> None:
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.visit(arg.annotation)

    def _params(self, node, args: ast.arguments) -> None:
        scope = self.info.scope_of(node)
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None:
                self._record(arg, "arg", arg.arg, True, scope)

    def visit_FunctionDef(self, node) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._outside_arguments(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self._record(node, "name", node.name, True)
        self._params(node, node.args)
        self._in(node, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._outside_arguments(node.args)
        self._params(node, node.args)
        self._in(node, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(expr)
        self._record(node, "name", node.name, True)
        self._in(node, node.body)

    def _visit_comprehension(self, node) -> None:
        _visit_comprehension(self, node, self.info.scope_of)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def visit_Name(self, node: ast.Name) -> None:
        self._record(node, "id", node.id, not isinstance(node.ctx, ast.Load))

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self.current
        while scope is not None and scope.kind == "comprehension":
            scope = scope.parent
        self._record(node.target, "id", node.target.id, True, scope)

    def visit_Import(self, node) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._record(alias, "bound", _alias_bound_name(alias), True)

    visit_ImportFrom = visit_Import

    def visit_Global(self, node) -> None:
        for index, name in enumerate(node.names):
            self._record(node, f"names[{index}]", name, False)

    visit_Nonlocal = visit_Global

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._record(node, "name", node.name, True)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._record(node, "name", node.name, True)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._record(node, "name", node.name, True)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._record(node, "rest", node.rest, True)
        self.generic_visit(node)


def identifiers(tree: ast.AST) -> set[str]:
    """Every identifier string in the program: names, parameters, attributes, keywords, imported modules."""
    out: set[str] = set()
    for node in ast.walk(tree):
        for attr in ("id", "arg", "name", "attr", "asname", "rest", "module"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                out.update(value.split("."))
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            out.update(node.names)
    return out


class _ScopeVisitor(Protocol):
    """What both passes share: a node visitor that tracks the scope it is in."""

    current: Scope | None

    def visit(self, node: ast.AST) -> Any: ...


_Comprehension = ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp


def _visit_comprehension(visitor: _ScopeVisitor, node: _Comprehension, enter: Callable[[ast.AST], Any]) -> None:
    """Visit a comprehension in evaluation order, for both passes (binding and resolving).

    The first iterable is evaluated in the enclosing scope; ``enter(node)`` then gives the comprehension's
    own scope (created by the first pass, looked up by the second), in which everything else runs.
    """
    generators = node.generators
    visitor.visit(generators[0].iter)
    saved, visitor.current = visitor.current, enter(node)
    for index, gen in enumerate(generators):
        visitor.visit(gen.target)
        if index:
            visitor.visit(gen.iter)
        for cond in gen.ifs:
            visitor.visit(cond)
    for part in ("elt", "key", "value"):
        if hasattr(node, part):
            visitor.visit(getattr(node, part))
    visitor.current = saved
