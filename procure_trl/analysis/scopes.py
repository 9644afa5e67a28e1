"""Scopes, bindings and name resolution (Python's own rules, computed from the stdlib ``ast``).

Every identifier occurrence in a program is resolved to the :class:`Binding` it refers to -- a local of a
function, lambda, comprehension or class, a module-level name -- or left unresolved (a builtin or a
name defined nowhere in the program). The rules are the compiler's:

* a name is local to a function/lambda/comprehension/class scope when that scope binds it (assignment,
  ``for``/``with``/``except``/``match`` targets, ``del``, parameters, ``import``, ``def``/``class``),
  unless the scope declares it ``global`` or ``nonlocal``;
* an assignment expression (``:=``) inside a comprehension binds in the nearest enclosing
  non-comprehension scope;
* free names are looked up in enclosing *function* scopes -- class bodies are skipped -- then in the
  module, then among the builtins;
* decorators, default values, annotations and class bases are evaluated in the enclosing scope, and so
  is the first iterable of a comprehension.

On top of resolution, :func:`renameable_bindings` decides which bindings a perturbation may rename
without any caller, test or introspection being able to tell (see its docstring for the rules).
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from procure_trl.analysis.spans import SourceMap, Span

BUILTIN_NAMES = frozenset(dir(builtins))

#: Calls that read or write local variables by *name* at run time: a function that uses one of them
#: cannot have its variables renamed.
DYNAMIC_SCOPE_CALLS = frozenset({"eval", "exec", "locals", "vars", "globals", "dir", "__import__", "breakpoint"})
#: Attribute names that reach frames (and so local variables by name).
DYNAMIC_SCOPE_ATTRIBUTES = frozenset({"_getframe", "f_locals", "f_globals", "f_back", "currentframe", "stack"})


class ScopeKind(str, Enum):
    MODULE = "module"
    FUNCTION = "function"
    LAMBDA = "lambda"
    CLASS = "class"
    COMPREHENSION = "comprehension"


class BindingKind(str, Enum):
    """How a name gets bound; only some kinds have an editable span at every site."""

    PARAMETER = "parameter"
    ASSIGNMENT = "assignment"  # =, +=, annotated assignment, for/with targets, :=, comprehension targets
    DELETE = "delete"
    IMPORT = "import"
    DEFINITION = "definition"  # def / class statement
    EXCEPT = "except"
    MATCH = "match"


class OccurrenceKind(str, Enum):
    LOAD = "load"
    STORE = "store"
    DELETE = "delete"
    PARAMETER = "parameter"
    DECLARATION = "declaration"  # the name in a global/nonlocal statement
    OTHER = "other"  # import alias, def/class name, except/match capture: no Name node of its own


@dataclass(eq=False)
class Occurrence:
    """One appearance of an identifier in the source."""

    name: str
    kind: OccurrenceKind
    scope: Scope  # the scope the occurrence is evaluated in
    node: ast.AST
    span: Span | None  # character span of exactly the identifier; None when it cannot be edited alone
    in_annotation: bool = False
    in_fstring: bool = False
    binding: Binding | None = None  # filled by resolution; None = builtin / undefined global

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 0)


@dataclass(eq=False)
class Binding:
    """A variable: one name in one scope, with every occurrence that refers to it."""

    scope: Scope
    name: str
    kinds: set[BindingKind] = field(default_factory=set)
    occurrences: list[Occurrence] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, str]:
        return (self.scope.id, self.name)

    def __repr__(self) -> str:
        return f"Binding({self.name!r} in {self.scope.kind.value} {self.scope.name!r})"


@dataclass(eq=False)
class Scope:
    id: int
    kind: ScopeKind
    name: str
    node: ast.AST
    parent: Scope | None
    children: list[Scope] = field(default_factory=list)
    bindings: dict[str, Binding] = field(default_factory=dict)
    declared_global: set[str] = field(default_factory=set)
    declared_nonlocal: set[str] = field(default_factory=set)
    parameters: list[str] = field(default_factory=list)
    positional_only: set[str] = field(default_factory=set)
    star_parameters: set[str] = field(default_factory=set)  # *args / **kwargs names
    uses_dynamic_scope: bool = False  # eval/exec/locals()/... or frame access inside this scope
    is_generator: bool = False

    @property
    def is_function_like(self) -> bool:
        return self.kind in (ScopeKind.FUNCTION, ScopeKind.LAMBDA, ScopeKind.COMPREHENSION)

    def walk(self) -> Iterator[Scope]:
        yield self
        for child in self.children:
            yield from child.walk()

    def top_level_function(self) -> Scope | None:
        """The outermost function/lambda scope that contains this one (None at module/class level)."""
        found = None
        scope: Scope | None = self
        while scope is not None:
            if scope.is_function_like:
                found = scope
            scope = scope.parent
        return found

    def _bind(self, name: str, kind: BindingKind) -> None:
        binding = self.bindings.get(name)
        if binding is None:
            binding = self.bindings[name] = Binding(self, name)
        binding.kinds.add(kind)


@dataclass
class ScopeAnalysis:
    """The result of :func:`analyze_scopes`."""

    source: str
    tree: ast.Module
    source_map: SourceMap
    module: Scope
    occurrences: list[Occurrence]
    scope_of_node: dict[int, Scope]  # id(def/lambda/class/comprehension node) -> its scope
    identifiers: frozenset[str]  # every identifier-like token in the source (for fresh names)
    future_annotations: bool = False
    has_star_import: bool = False
    #: derived facts computed on demand by other analyses (value kinds, bound names...), keyed by them
    memo: dict = field(default_factory=dict, repr=False)

    @property
    def scopes(self) -> list[Scope]:
        return list(self.module.walk())

    def bindings(self) -> Iterator[Binding]:
        for scope in self.module.walk():
            yield from scope.bindings.values()

    def binding_at(self, node: ast.AST) -> Binding | None:
        """The binding the Name/arg ``node`` refers to."""
        for occ in self._by_node().get(id(node), ()):
            return occ.binding
        return None

    @property
    def parents(self) -> dict[int, ast.AST]:
        """id(node) -> its parent node (computed once)."""
        cache = getattr(self, "_parents", None)
        if cache is None:
            cache = {}
            for node in ast.walk(self.tree):
                for child in ast.iter_child_nodes(node):
                    cache[id(child)] = node
            self._parents = cache
        return cache

    @property
    def shadowed_builtins(self) -> frozenset[str]:
        """Builtin names the program binds somewhere (a star-import may bind any of them); computed once
        (the analyses ask for it per statement pair)."""
        if "shadowed_builtins" not in self.memo:
            names = {b.name for b in self.bindings()} | {o.name for o in self.occurrences
                                                         if o.kind is OccurrenceKind.DECLARATION}
            self.memo["shadowed_builtins"] = BUILTIN_NAMES if self.has_star_import else frozenset(names & BUILTIN_NAMES)
        return self.memo["shadowed_builtins"]

    def _by_node(self) -> dict[int, list[Occurrence]]:
        cache = getattr(self, "_node_index", None)
        if cache is None:
            cache = {}
            for occ in self.occurrences:
                cache.setdefault(id(occ.node), []).append(occ)
            self._node_index = cache
        return cache


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


class _ScopeBuilder(ast.NodeVisitor):
    """Builds the scope tree and collects occurrences (resolution happens afterwards)."""

    def __init__(self, source_map: SourceMap, tree: ast.Module) -> None:
        self.smap = source_map
        self.occurrences: list[Occurrence] = []
        self.scope_of_node: dict[int, Scope] = {}
        self._next_id = 0
        self.module = self._new_scope(ScopeKind.MODULE, "<module>", tree, None)
        self.scope = self.module
        self._in_annotation = 0
        self._in_fstring = 0
        self.star_import = False

    # -- helpers ---------------------------------------------------------------------------------
    def _new_scope(self, kind: ScopeKind, name: str, node: ast.AST, parent: Scope | None) -> Scope:
        scope = Scope(self._next_id, kind, name, node, parent)
        self._next_id += 1
        if parent is not None:
            parent.children.append(scope)
        self.scope_of_node[id(node)] = scope
        return scope

    def _name_span(self, node: ast.AST, name: str) -> Span | None:
        """Span of identifier ``name`` starting at ``node``'s position, if the text really is there."""
        start = self.smap.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = start + len(name)
        text = self.smap.source
        if text[start:end] != name:
            return None
        if end < len(text) and (text[end].isalnum() or text[end] == "_"):
            return None
        return start, end

    def _record(self, name: str, kind: OccurrenceKind, node: ast.AST, span: Span | None, scope: Scope | None = None):
        occ = Occurrence(
            name, kind, scope or self.scope, node, span,
            in_annotation=self._in_annotation > 0, in_fstring=self._in_fstring > 0,
        )
        self.occurrences.append(occ)
        return occ

    def _visit_annotation(self, node: ast.AST | None) -> None:
        if node is None:
            return
        self._in_annotation += 1
        self.visit(node)
        self._in_annotation -= 1

    def _binding_scope_for_walrus(self) -> Scope:
        scope = self.scope
        while scope.kind == ScopeKind.COMPREHENSION and scope.parent is not None:
            scope = scope.parent
        return scope

    # -- names -----------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            kind = OccurrenceKind.LOAD
        elif isinstance(node.ctx, ast.Del):
            kind = OccurrenceKind.DELETE
            self.scope._bind(node.id, BindingKind.DELETE)
        else:
            kind = OccurrenceKind.STORE
            self.scope._bind(node.id, BindingKind.ASSIGNMENT)
        self._record(node.id, kind, node, self._name_span(node, node.id))
        if kind is OccurrenceKind.LOAD and node.id == "__class__":
            self.scope.uses_dynamic_scope = True  # the implicit __class__ cell: keep this tree untouched

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        target_scope = self._binding_scope_for_walrus()
        target_scope._bind(node.target.id, BindingKind.ASSIGNMENT)
        self._record(
            node.target.id, OccurrenceKind.STORE, node.target, self._name_span(node.target, node.target.id),
            target_scope
        )

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            self.scope.declared_global.add(name)
            self._record(name, OccurrenceKind.DECLARATION, node, None)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        for name in node.names:
            self.scope.declared_nonlocal.add(name)
            self._record(name, OccurrenceKind.DECLARATION, node, None)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            self.scope._bind(name, BindingKind.IMPORT)
            self._record(name, OccurrenceKind.OTHER, alias, None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.star_import = True
                continue  # binds unknown module-level names; module names are never renamed anyway
            name = alias.asname or alias.name
            self.scope._bind(name, BindingKind.IMPORT)
            self._record(name, OccurrenceKind.OTHER, alias, None)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.scope._bind(node.name, BindingKind.EXCEPT)
            self._record(node.name, OccurrenceKind.OTHER, node, None)
        for stmt in node.body:
            self.visit(stmt)

    def _match_capture(self, node: ast.AST, name: str | None) -> None:
        if name:
            self.scope._bind(name, BindingKind.MATCH)
            self._record(name, OccurrenceKind.OTHER, node, None)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        self._match_capture(node, node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        self._match_capture(node, node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        for key in node.keys:
            self.visit(key)
        for pattern in node.patterns:
            self.visit(pattern)
        self._match_capture(node, node.rest)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in DYNAMIC_SCOPE_CALLS:
            self.scope.uses_dynamic_scope = True
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in DYNAMIC_SCOPE_ATTRIBUTES:
            self.scope.uses_dynamic_scope = True
        self.visit(node.value)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        self._in_fstring += 1
        self.generic_visit(node)
        self._in_fstring -= 1

    def visit_Yield(self, node: ast.AST) -> None:
        self.scope.is_generator = True
        self.generic_visit(node)

    visit_YieldFrom = visit_Yield
    visit_Await = visit_Yield

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)
        self._visit_annotation(node.annotation)

    # -- scopes ------------------------------------------------------------------------------------
    def _visit_arguments(self, args: ast.arguments, scope: Scope) -> None:
        """Bind parameters in ``scope`` (defaults/annotations are visited by the caller)."""
        for arg in args.posonlyargs:
            scope.positional_only.add(arg.arg)
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
            scope.parameters.append(arg.arg)
        for star in (args.vararg, args.kwarg):
            if star is not None:
                scope.parameters.append(star.arg)
                scope.star_parameters.add(star.arg)
        every = (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg)
        for arg in [a for a in every if a is not None]:
            scope._bind(arg.arg, BindingKind.PARAMETER)
            self._record(arg.arg, OccurrenceKind.PARAMETER, arg, self._name_span(arg, arg.arg), scope)

    def _visit_signature_outside(self, args: ast.arguments, with_annotations: bool) -> None:
        for default in (*args.defaults, *[d for d in args.kw_defaults if d is not None]):
            self.visit(default)
        if with_annotations:
            for arg in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg):
                if arg is not None:
                    self._visit_annotation(arg.annotation)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._visit_signature_outside(node.args, with_annotations=True)
        self._visit_annotation(node.returns)
        self.scope._bind(node.name, BindingKind.DEFINITION)
        self._record(node.name, OccurrenceKind.OTHER, node, None)
        outer = self.scope
        self.scope = self._new_scope(ScopeKind.FUNCTION, node.name, node, outer)
        self._visit_arguments(node.args, self.scope)
        for stmt in node.body:
            self.visit(stmt)
        if isinstance(node, ast.AsyncFunctionDef):
            self.scope.is_generator = True  # suspends like a generator: treat alike
        self.scope = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_signature_outside(node.args, with_annotations=False)
        outer = self.scope
        self.scope = self._new_scope(ScopeKind.LAMBDA, "<lambda>", node, outer)
        self._visit_arguments(node.args, self.scope)
        self.visit(node.body)
        self.scope = outer

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        for base in node.bases:
            self.visit(base)
        for kw in node.keywords:
            self.visit(kw.value)
        self.scope._bind(node.name, BindingKind.DEFINITION)
        self._record(node.name, OccurrenceKind.OTHER, node, None)
        outer = self.scope
        self.scope = self._new_scope(ScopeKind.CLASS, node.name, node, outer)
        for stmt in node.body:
            self.visit(stmt)
        self.scope = outer

    def _visit_comprehension(self, node: ast.AST, elements: list[ast.AST]) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        outer = self.scope
        self.scope = self._new_scope(ScopeKind.COMPREHENSION, type(node).__name__, node, outer)
        if isinstance(node, ast.GeneratorExp):
            self.scope.is_generator = True
        for i, gen in enumerate(generators):
            if i > 0:
                self.visit(gen.iter)
            self.visit(gen.target)
            for cond in gen.ifs:
                self.visit(cond)
        for element in elements:
            self.visit(element)
        self.scope = outer

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._visit_comprehension(node, [node.elt])

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._visit_comprehension(node, [node.elt])

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._visit_comprehension(node, [node.elt])

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node, [node.key, node.value])


def _resolve(builder: _ScopeBuilder) -> None:
    """Attach every occurrence to its binding (Python's LEGB rules, classes skipped for free names)."""
    module = builder.module
    # A name declared global/nonlocal is not local: drop it from the scope's bindings.
    for scope in module.walk():
        for name in scope.declared_global | scope.declared_nonlocal:
            scope.bindings.pop(name, None)

    def lookup_free(scope: Scope, name: str) -> Binding | None:
        parent = scope.parent
        while parent is not None:
            if parent.kind is ScopeKind.MODULE:
                return parent.bindings.get(name)
            if parent.kind is not ScopeKind.CLASS and name in parent.bindings:
                return parent.bindings[name]
            if parent.kind is not ScopeKind.CLASS and name in parent.declared_global:
                return module.bindings.get(name)
            parent = parent.parent
        return None

    for occ in builder.occurrences:
        scope, name = occ.scope, occ.name
        if name in scope.declared_global:
            binding = module.bindings.get(name)
        elif name in scope.bindings:
            binding = scope.bindings[name]
        else:
            binding = lookup_free(scope, name)
        occ.binding = binding
        if binding is not None:
            binding.occurrences.append(occ)


def analyze_scopes(source: str, tree: ast.Module | None = None) -> ScopeAnalysis:
    """Scopes, bindings and resolved occurrences of ``source`` (parsed with ``ast`` if ``tree`` is None)."""
    if tree is None:
        tree = ast.parse(source)
    smap = SourceMap(source)
    builder = _ScopeBuilder(smap, tree)
    for stmt in tree.body:
        builder.visit(stmt)
    _resolve(builder)
    future = any(
        isinstance(s, ast.ImportFrom) and s.module == "__future__" and any(a.name == "annotations" for a in s.names)
        for s in tree.body
    )
    return ScopeAnalysis(
        source=source,
        tree=tree,
        source_map=smap,
        module=builder.module,
        occurrences=builder.occurrences,
        scope_of_node=builder.scope_of_node,
        identifiers=frozenset(_identifier_tokens(source)),
        future_annotations=future,
        has_star_import=builder.star_import,
    )


_IDENTIFIER_LIKE = re.compile(r"\w+")


def _identifier_tokens(source: str) -> set[str]:
    """Every maximal identifier-like run of characters in the source (strings and comments included):
    a fresh name must collide with none of them, so that nothing -- not even text -- can be confused."""
    return set(_IDENTIFIER_LIKE.findall(source))


# -- what may be renamed ---------------------------------------------------------------------------
_RENAMEABLE_KINDS = frozenset({BindingKind.PARAMETER, BindingKind.ASSIGNMENT, BindingKind.DELETE})


def _user_function_names(analysis: ScopeAnalysis) -> set[str]:
    return {s.name for s in analysis.module.walk() if s.kind is ScopeKind.FUNCTION}


def _callee_is_library(call: ast.Call, analysis: ScopeAnalysis, user_functions: set[str]) -> bool:
    """True when ``call`` calls code outside the program (a builtin, an imported name, a method that no
    ``def`` in the program defines): such code cannot know a lambda's parameter names."""
    func = call.func
    if isinstance(func, ast.Name):
        binding = analysis.binding_at(func)
        if binding is None:
            return func.id not in user_functions
        return binding.kinds == {BindingKind.IMPORT}
    if isinstance(func, ast.Attribute):
        return func.attr not in user_functions
    return False


def private_parameter_scopes(analysis: ScopeAnalysis) -> set[int]:
    """Ids of scopes whose (ordinary) parameters no caller can pass by keyword.

    * a lambda passed directly as an argument to library code (``sorted(key=lambda x: ...)``), unless
      that call also passes one of its parameter names as a keyword (``partial(lambda x, y: ..., y=2)``);
    * a nested ``def`` without decorators whose name is only ever called, positionally
      (``g(a, b)``, never ``g(x=1)``, never returned or passed around).
    Module-level functions and methods are public: tests may call them with keywords.
    """
    parents = analysis.parents
    user_functions = _user_function_names(analysis)
    private: set[int] = set()
    for scope in analysis.module.walk():
        if scope.kind is ScopeKind.LAMBDA:
            parent = parents.get(id(scope.node))
            if isinstance(parent, ast.keyword):
                parent = parents.get(id(parent))
            if isinstance(parent, ast.Call) and parent.func is scope.node:
                if not parent.keywords:  # (lambda x: ...)(1): called right here, positionally
                    private.add(scope.id)
            elif isinstance(parent, ast.Call) and _callee_is_library(parent, analysis, user_functions):
                # functools.partial(lambda x, y: ..., y=2) passes y by keyword: a call whose keywords
                # name a parameter of the lambda (or that unpacks **kwargs) keeps the names public
                keywords = {k.arg for k in parent.keywords}
                if None not in keywords and not keywords & set(scope.parameters):
                    private.add(scope.id)
        elif scope.kind is ScopeKind.FUNCTION and scope.parent is not None:
            if not scope.parent.is_function_like or scope.node.decorator_list:  # type: ignore[attr-defined]
                continue
            binding = scope.parent.bindings.get(scope.name)
            if binding is None or binding.kinds != {BindingKind.DEFINITION}:
                continue
            ok = True
            for occ in binding.occurrences:
                if occ.kind is OccurrenceKind.OTHER and occ.node is scope.node:
                    continue
                call = parents.get(id(occ.node))
                if not (
                    occ.kind is OccurrenceKind.LOAD
                    and isinstance(call, ast.Call)
                    and call.func is occ.node
                    and not call.keywords
                ):
                    ok = False
                    break
            if ok:
                private.add(scope.id)
    return private


def _self_documenting(source: str, span: Span) -> bool:
    """True when the name at ``span`` is followed by ``=`` closing an f-string field (``f"{x=}"``),
    which prints the expression's *text*."""
    i = span[1]
    while i < len(source) and source[i] in " \t":
        i += 1
    return source[i : i + 1] == "=" and source[i + 1 : i + 2] not in ("=",)


def renameable_bindings(
    analysis: ScopeAnalysis,
    protected_names: frozenset[str] | set[str] = frozenset(),
    *,
    allow_public_parameters: bool = False,
) -> list[Binding]:
    """Bindings a perturbation may rename without changing what any caller, test or introspection sees.

    A binding qualifies when all of these hold (anything else is left alone):

    * it lives in a function, lambda or comprehension scope -- module-level names, class attributes and
      imports are visible from outside;
    * it is bound only by assignment-like statements, ``del`` or parameters: every occurrence is a plain
      identifier whose exact span is known (no ``import``/``def``/``except``/``match`` alias);
    * it is a parameter only where no caller can pass it by keyword: positional-only, ``*args``/``**kw``,
      or a parameter of a private lambda/nested function (:func:`private_parameter_scopes`);
    * no ``global``/``nonlocal`` statement names it, it does not start with ``__`` (name mangling), and
      it appears in no annotation and in no self-documenting f-string field (``f"{x=}"``);
    * the outermost function that contains it uses no ``eval``/``exec``/``locals()``/``vars()``/
      ``globals()``/``dir()``, frame access or ``__class__``;
    * its name is not in ``protected_names``.

    ``allow_public_parameters=True`` keeps public parameters in the list: for callers that rename some
    *later* definitions of a variable but never the parameter itself (``def_use_break``).
    """
    private = private_parameter_scopes(analysis)
    dynamic_roots: set[int] = set()
    for scope in analysis.module.walk():
        if scope.uses_dynamic_scope:
            root = scope.top_level_function()
            dynamic_roots.add(root.id if root is not None else -1)
    if -1 in dynamic_roots:
        # dynamic access at module/class level can still reach function objects but not their locals;
        # a class-level eval could read class attributes -- which we never rename anyway.
        dynamic_roots.discard(-1)
    out: list[Binding] = []
    source = analysis.source
    for binding in analysis.bindings():
        scope = binding.scope
        if not scope.is_function_like or binding.name in protected_names or binding.name.startswith("__"):
            continue
        if not binding.kinds <= _RENAMEABLE_KINDS:
            continue
        if BindingKind.PARAMETER in binding.kinds and not allow_public_parameters:
            public = scope.id not in private
            if public and binding.name not in scope.positional_only and binding.name not in scope.star_parameters:
                continue
        root = scope.top_level_function()
        if root is not None and root.id in dynamic_roots:
            continue
        ok = True
        for occ in binding.occurrences:
            if occ.span is None or occ.in_annotation or (occ.in_fstring and _self_documenting(source, occ.span)):
                ok = False
                break
        if ok:
            out.append(binding)
    return out


def is_valid_fresh_name(name: str, taken: set[str] | frozenset[str]) -> bool:
    """A new identifier must be a valid name, no keyword or builtin, and appear nowhere in ``taken``."""
    return (
        name.isidentifier()
        and not keyword.iskeyword(name)
        and not keyword.issoftkeyword(name)
        and name not in BUILTIN_NAMES
        and name not in taken
        and not name.startswith("__")
    )
