"""Read/write/effect sets of statements, and when two statements of a block are independent.

For each statement we compute, at the time the statement *executes* (bodies of nested functions and
lambdas run later and are not counted; comprehensions run at once and are):

* ``reads`` / ``writes``: the variables (resolved bindings, or free names) it reads and binds;
* ``heap_write``: it may change an object other code can see -- attribute/subscript assignment, a
  mutating method call (``append``, ``pop``...), a call to unknown code (user functions, unknown methods),
  iterating something that might be an iterator, ``+=`` on a possibly-mutable value, a write to a
  variable captured by a closure;
* ``io``: it may talk to the outside world (``print``, ``input``, ``open``, unknown code);
* ``control``: it may transfer control (``return``, ``break``, ``continue``, ``raise``, ``yield``,
  ``await``, ``assert``, ``global``/``nonlocal``, class bodies and ``del``);
* ``may_raise``: it may raise -- everything except binding literals, parameters, known-int arithmetic
  and stdlib imports;
* ``reads_mutable``: it reads a variable that might alias a mutable object.

Two statements are independent (:func:`independent`) when swapping them cannot change any observable
behaviour: no variable one writes is read or written by the other, at most one touches the heap or the
outside world and then the other reads only immutable values, neither transfers control, and at most one
can raise (then the other has no effect but binding locals, and the block is not inside a ``try`` where
the handler could see those locals).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field

from procure_trl.analysis.scopes import BindingKind, Scope, ScopeAnalysis, ScopeKind
from procure_trl.analysis.values import INT, STR, expression_kind

#: Builtins that neither mutate their arguments nor call back into user code (beyond dunder methods of
#: the arguments, which we assume to be side-effect free) and do not consume iterators.
PURE_BUILTINS = frozenset({
    "len", "abs", "range", "str", "int", "float", "bool", "ord", "chr", "isinstance", "issubclass", "round",
    "divmod", "repr", "hex", "bin", "oct", "type", "pow", "hash", "id", "callable", "complex", "slice",
    "bytes", "format", "ascii",
})
#: Builtins that iterate (consume) their arguments: pure on collections, a mutation of an iterator.
ITERATING_BUILTINS = frozenset({"list", "tuple", "set", "frozenset", "dict", "sorted", "sum", "min", "max", "any", "all"})
#: Builtins that build lazy iterators over their arguments (consume nothing until iterated).
LAZY_BUILTINS = frozenset({"enumerate", "zip", "reversed", "iter"})
IO_BUILTINS = frozenset({"print", "input", "open"})
#: Methods of str/list/dict/set/tuple that return a new value and change nothing.
PURE_METHODS = frozenset({
    "split", "rsplit", "strip", "lstrip", "rstrip", "lower", "upper", "join", "replace", "startswith",
    "endswith", "find", "rfind", "index", "rindex", "count", "isdigit", "isalpha", "isalnum", "isupper",
    "islower", "isspace", "isdecimal", "isnumeric", "istitle", "format", "keys", "values", "items", "get",
    "copy", "title", "capitalize", "swapcase", "casefold", "zfill", "center", "ljust", "rjust", "splitlines",
    "partition", "rpartition", "encode", "decode", "translate", "maketrans", "expandtabs", "bit_length",
    "is_integer", "conjugate", "union", "intersection", "difference", "symmetric_difference", "issubset",
    "issuperset", "isdisjoint", "fromkeys",
})
_CONTROL = (ast.Return, ast.Break, ast.Continue, ast.Raise, ast.Yield, ast.YieldFrom, ast.Await, ast.Assert,
            ast.Global, ast.Nonlocal, ast.Delete, ast.ClassDef)
_LITERAL_CONTAINERS = (ast.List, ast.Tuple, ast.Set)


@dataclass
class StatementEffects:
    """What one statement does when it runs (see the module docstring)."""

    reads: set[tuple] = field(default_factory=set)  # variable keys: ("bound", scope id, name) / ("free", name)
    writes: set[tuple] = field(default_factory=set)
    heap_write: bool = False
    io: bool = False
    control: bool = False
    may_raise: bool = False
    reads_mutable: bool = False
    read_names: set[str] = field(default_factory=set)
    write_names: set[str] = field(default_factory=set)

    def to_dict(self) -> dict:
        return {
            "reads": sorted(self.read_names),
            "writes": sorted(self.write_names),
            "heap_write": self.heap_write,
            "io": self.io,
            "control": self.control,
            "may_raise": self.may_raise,
        }


def _key(binding, name: str) -> tuple:
    return ("free", name) if binding is None else ("bound", binding.scope.id, binding.name)


class EffectAnalyzer:
    """Computes :class:`StatementEffects` for statements of one program."""

    def __init__(self, analysis: ScopeAnalysis, shadowed: frozenset[str] = frozenset()) -> None:
        self.analysis = analysis
        self.shadowed = shadowed
        self.user_functions = {s.name for s in analysis.module.walk() if s.kind is ScopeKind.FUNCTION}
        self._kinds: dict[int, dict[str, str]] = {}
        # variables some nested scope reads or writes (closure cells): writing one is a heap write
        self.captured: set[tuple] = set()
        for binding in analysis.bindings():
            if any(o.scope is not binding.scope and o.scope.kind is not ScopeKind.COMPREHENSION for o in binding.occurrences):
                self.captured.add(_key(binding, binding.name))

    def value_kinds(self, scope: Scope) -> dict[str, str]:
        """int/str kinds of the locals of ``scope`` (empty outside functions)."""
        if scope.id not in self._kinds:
            from procure_trl.analysis.values import local_value_kinds

            node = scope.node
            self._kinds[scope.id] = (
                local_value_kinds(node, self.shadowed) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else {}
            )
        return self._kinds[scope.id]

    def _is_builtin(self, func: ast.AST, names: frozenset[str]) -> str | None:
        if isinstance(func, ast.Name) and func.id in names and func.id not in self.shadowed:
            if self.analysis.binding_at(func) is None:
                return func.id
        return None

    def effects(self, stmt: ast.stmt, scope: Scope) -> StatementEffects:
        eff = StatementEffects()
        kinds = self.value_kinds(scope)
        immutable_kinds = (INT, STR)
        analysis = self.analysis

        def read_expr_mutable(expr: ast.AST) -> bool:
            return expression_kind(expr, kinds, self.shadowed) not in immutable_kinds

        def visit(node: ast.AST) -> None:
            if isinstance(node, _CONTROL):
                eff.control = True
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for d in (*node.decorator_list, *node.args.defaults, *[d for d in node.args.kw_defaults if d]):
                    visit(d)
                if node.decorator_list:
                    eff.heap_write = eff.io = eff.may_raise = True  # a decorator is arbitrary code
                if not analysis.future_annotations:
                    for a in (*node.args.posonlyargs, *node.args.args, node.args.vararg, *node.args.kwonlyargs, node.args.kwarg):
                        if a is not None and a.annotation is not None:
                            visit(a.annotation)
                    if node.returns is not None:
                        visit(node.returns)
                binding = scope.bindings.get(node.name) if node.name not in scope.declared_global else None
                eff.writes.add(_key(binding, node.name))
                eff.write_names.add(node.name)
                return
            if isinstance(node, ast.Lambda):
                for d in (*node.args.defaults, *[d for d in node.args.kw_defaults if d]):
                    visit(d)
                return
            if isinstance(node, ast.GeneratorExp):
                # lazy: what it reads is read whenever it is consumed; treat as unknown unless consumed
                # right here by a call (marked by the caller)
                if id(node) not in consumed:
                    eff.heap_write = eff.io = True
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                names = [module] if module else [a.name for a in node.names]
                if not all(n and n.split(".")[0] in sys.stdlib_module_names for n in names) or any(
                    a.name == "*" for a in node.names
                ):
                    eff.heap_write = eff.io = eff.may_raise = True
                for alias in node.names:
                    name = (alias.asname or alias.name).split(".")[0]
                    binding = scope.bindings.get(name)
                    eff.writes.add(_key(binding, name))
                    eff.write_names.add(name)
                return
            if isinstance(node, ast.Name):
                binding = analysis.binding_at(node)
                key = _key(binding, node.id)
                if isinstance(node.ctx, ast.Load):
                    eff.reads.add(key)
                    eff.read_names.add(node.id)
                    if kinds.get(node.id) not in immutable_kinds or (binding is not None and binding.scope is not scope):
                        eff.reads_mutable = True
                else:
                    eff.writes.add(key)
                    eff.write_names.add(node.id)
                    if key in self.captured or binding is None or binding.scope.kind in (ScopeKind.MODULE, ScopeKind.CLASS):
                        # a closure, or another function through the module, can see it
                        if binding is None or binding.scope is not scope or key in self.captured:
                            eff.heap_write = True
                return
            if isinstance(node, ast.NamedExpr):
                visit(node.value)
                visit(node.target)
                return
            if isinstance(node, (ast.Attribute, ast.Subscript)) and not isinstance(node.ctx, ast.Load):
                eff.heap_write = True
            if isinstance(node, ast.AugAssign):
                target = node.target
                if isinstance(target, ast.Name):
                    eff.reads.add(_key(analysis.binding_at(target), target.id))
                    eff.read_names.add(target.id)
                    if kinds.get(target.id) not in immutable_kinds:
                        eff.heap_write = True  # += may mutate a list (or call __iadd__) in place
                else:
                    eff.heap_write = True
            if isinstance(node, ast.Call):
                self._call_effects(node, eff, consumed, read_expr_mutable)
            for child in ast.iter_child_nodes(node):
                visit(child)

        consumed: set[int] = set()
        visit(stmt)
        eff.may_raise = eff.may_raise or self._may_raise(stmt, scope, kinds)
        if isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.Match, ast.AsyncFor, ast.AsyncWith)):
            eff.may_raise = True
        if getattr(sys, "version_info", (3, 11)) >= (3, 11) and isinstance(stmt, getattr(ast, "TryStar", ())):
            eff.control = True
        return eff

    def _call_effects(self, call: ast.Call, eff: StatementEffects, consumed: set[int], read_expr_mutable) -> None:
        func = call.func
        for arg in (*call.args, *[k.value for k in call.keywords]):
            if isinstance(arg, ast.GeneratorExp):
                consumed.add(id(arg))
        if self._is_builtin(func, PURE_BUILTINS | LAZY_BUILTINS):
            return  # the arguments themselves are visited by the caller
        name = self._is_builtin(func, ITERATING_BUILTINS)
        if name:
            # consuming an iterator changes it: only pure when every argument is surely not an iterator
            for arg in (*call.args, *[k.value for k in call.keywords]):
                if isinstance(arg, ast.Lambda):
                    continue  # key=lambda ...: its body is checked below as an expression
                if not _surely_not_iterator(arg, self, call):
                    eff.heap_write = True
            for kw in call.keywords:
                if isinstance(kw.value, ast.Name):
                    eff.heap_write = eff.io = True  # key=some_function: unknown code
                elif isinstance(kw.value, ast.Lambda):
                    _lambda_body_effects(kw.value, eff, self)
            return
        if self._is_builtin(func, IO_BUILTINS):
            eff.io = True
            return
        if isinstance(func, ast.Attribute) and func.attr in PURE_METHODS and func.attr not in self.user_functions:
            if func.attr == "join":
                for arg in call.args:
                    if not _surely_not_iterator(arg, self, call):
                        eff.heap_write = True
            return
        # unknown code: a user function, a mutating method, an imported function...
        eff.heap_write = True
        eff.io = True

    def _may_raise(self, stmt: ast.stmt, scope: Scope, kinds: dict[str, str]) -> bool:
        if isinstance(stmt, ast.Pass):
            return False
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return False  # stdlib imports (others were marked above)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = stmt.args
            values = [*stmt.decorator_list, *args.defaults, *[d for d in args.kw_defaults if d]]
            if not self.analysis.future_annotations:
                values += [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.annotation]
                values += [stmt.returns] if stmt.returns else []
            return not all(_safe_value(v, scope, kinds) for v in values)
        if isinstance(stmt, ast.Assign):
            return not (all(isinstance(t, ast.Name) for t in stmt.targets) and _safe_value(stmt.value, scope, kinds))
        if isinstance(stmt, ast.AnnAssign):
            return not (isinstance(stmt.target, ast.Name) and stmt.value is not None and _safe_value(stmt.value, scope, kinds))
        return True


def _lambda_body_effects(lam: ast.Lambda, eff: StatementEffects, analyzer: EffectAnalyzer) -> None:
    for node in ast.walk(lam.body):
        if isinstance(node, ast.Call):
            func = node.func
            pure = analyzer._is_builtin(func, PURE_BUILTINS) or (
                isinstance(func, ast.Attribute) and func.attr in PURE_METHODS and func.attr not in analyzer.user_functions
            )
            if not pure:
                eff.heap_write = eff.io = True


def _surely_not_iterator(arg: ast.AST, analyzer: EffectAnalyzer, call: ast.Call) -> bool:
    """True when ``arg`` cannot be an iterator (iterating it changes nothing)."""
    if isinstance(arg, (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp, ast.Constant, ast.JoinedStr)):
        return True
    if isinstance(arg, ast.GeneratorExp):
        return True  # created and consumed right here
    if isinstance(arg, ast.Call) and analyzer._is_builtin(arg.func, frozenset({"range", "list", "sorted", "set", "tuple", "str", "dict"})):
        return True
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr in {"split", "keys", "values", "items"}:
        return True  # dict views and lists are re-iterable
    return False


def _safe_value(node: ast.AST, scope: Scope, kinds: dict[str, str]) -> bool:
    """Evaluating ``node`` cannot raise: literals, literal containers of those, and parameters of the
    scope that the function never deletes."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, _LITERAL_CONTAINERS):
        return all(_safe_value(e, scope, kinds) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and isinstance(k, ast.Constant) for k in node.keys) and all(
            _safe_value(v, scope, kinds) for v in node.values
        )
    if isinstance(node, ast.Name) and node.id in scope.parameters:
        binding = scope.bindings.get(node.id)
        return binding is not None and binding.kinds == {BindingKind.PARAMETER}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return True
    return False


def independent(a: StatementEffects, b: StatementEffects, *, inside_try: bool) -> tuple[bool, str]:
    """Can two adjacent statements with these effects be swapped? Returns (ok, reason-if-not)."""
    if a.control or b.control:
        return False, "control transfer"
    if a.writes & (b.reads | b.writes) or b.writes & a.reads:
        return False, "data dependency"
    if (a.heap_write or a.io) and (b.heap_write or b.io):
        return False, "both have side effects"
    for x, y in ((a, b), (b, a)):
        if x.heap_write and (y.reads_mutable or y.may_raise):
            return False, "side effect on a value the other may read"
    if a.may_raise and b.may_raise:
        return False, "both may raise"
    if (a.may_raise or b.may_raise) and inside_try:
        return False, "may raise inside a try block"
    if a.may_raise and (b.heap_write or b.io) or b.may_raise and (a.heap_write or a.io):
        return False, "one may raise, the other has side effects"
    return True, ""
