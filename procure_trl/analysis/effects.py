"""Read/write/effect sets of statements, and when two adjacent statements are independent.

For each statement we compute what happens when it *executes* (bodies of nested functions and lambdas
run later and are not counted; comprehensions run at once and are):

* ``reads`` / ``writes``: the variables (resolved bindings, or free names) it reads and binds;
* ``heap_write``: it may change an object other code can see -- attribute/subscript assignment, a
  mutating method call (``append``, ``pop``...), a call to unknown code (user functions, unknown methods,
  decorators), iterating something that might be an iterator, ``+=`` on a possibly-mutable value;
* ``writes_visible`` / ``writes_module``: it binds a closure cell or class attribute / a module name;
* ``io``: it may talk to the outside world (``print``, ``input``, ``open``, unknown code);
* ``exits``: it may leave the function (``return``, ``raise``, ``assert``);
* ``control``: any other transfer of control or scope trickery (``break``, ``continue``, ``yield``,
  ``await``, ``global``/``nonlocal``, ``del``, class bodies);
* ``may_raise``: it may raise. Only these cannot: ``pass``, stdlib imports, plain ``def``, and bindings
  of expressions built from literals, empty builtin containers, locals bound on every path, and int/str
  operations that cannot fail (arithmetic on number literals is tried at once; ``a, b = x, y`` unpacks a
  display of the same length);
* ``reads_mutable``: it reads the contents of a variable that might alias a mutable object (not a
  builtin, and not ``y = x``, which copies which object a local names).

A statement is *silent* when it only binds locals nobody else sees (or module names while the module
runs): once an exception leaves the function, whether it ran is unobservable.

:func:`independent` decides whether two adjacent statements may be swapped without any observable
change: no variable one writes is read or written by the other; at most one has side effects, and then
the other reads only immutable values and cannot raise; a name one binds for others to see is not next
to unknown code; at most one may raise, and then the other is silent and the block is not inside a
``try`` whose handler could see the difference; a statement that may leave the function only swaps with
a silent one that cannot raise. ``break``/``continue``/``yield``/``await`` never swap.
"""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from procure_trl.analysis.scopes import BUILTIN_NAMES, BindingKind, Scope, ScopeAnalysis, ScopeKind
from procure_trl.analysis.values import INT, STR, expression_kind, function_value_kinds, unpacked_pairs

#: Builtins that neither mutate their arguments nor call back into user code (beyond dunder methods of
#: the arguments, assumed free of side effects) and do not consume iterators.
PURE_BUILTINS = frozenset({
    "len", "abs", "range", "str", "int", "float", "bool", "ord", "chr", "isinstance", "issubclass", "round",
    "divmod", "repr", "hex", "bin", "oct", "type", "pow", "hash", "id", "callable", "complex", "slice",
    "bytes", "format", "ascii",
})
#: Builtins that iterate (consume) their arguments: pure on collections, a mutation of an iterator.
ITERATING_BUILTINS = frozenset(
    {"list", "tuple", "set", "frozenset", "dict", "sorted", "sum", "min", "max", "any", "all"}
)
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
_CONTROL = (ast.Break, ast.Continue, ast.Yield, ast.YieldFrom, ast.Await, ast.Global, ast.Nonlocal, ast.Delete,
            ast.ClassDef, ast.AsyncFor, ast.AsyncWith)
_EXITS = (ast.Return, ast.Raise, ast.Assert)
_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPOUND = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.Match, ast.AsyncFor, ast.AsyncWith)
#: stdlib modules whose import prints or opens something
_IMPORTS_WITH_OUTPUT = frozenset({"this", "antigravity", "__hello__", "__phello__", "idlelib", "turtle", "tkinter"})
_SAFE_INT_OPS = (ast.Add, ast.Sub, ast.Mult, ast.BitAnd, ast.BitOr, ast.BitXor)


@dataclass
class StatementEffects:
    """What one statement does when it runs (see the module docstring)."""

    reads: set[tuple] = field(default_factory=set)  # variable keys: ("bound", scope id, name) / ("free", name)
    writes: set[tuple] = field(default_factory=set)
    heap_write: bool = False
    io: bool = False
    exits: bool = False
    control: bool = False
    may_raise: bool = False
    reads_mutable: bool = False
    writes_visible: bool = False  # binds a name other code sees at once (closure cell, class attribute)
    writes_module: bool = False  # binds a module-level name (from module level)
    read_names: set[str] = field(default_factory=set)
    write_names: set[str] = field(default_factory=set)

    @property
    def silent(self) -> bool:
        """Only binds locals nobody else sees (or module names while the module runs): whether it ran is
        unobservable once an exception leaves the function (or the module)."""
        return not (self.heap_write or self.io or self.exits or self.control or self.writes_visible)

    def to_dict(self) -> dict:
        return {
            "reads": sorted(self.read_names),
            "writes": sorted(self.write_names),
            "heap_write": self.heap_write,
            "io": self.io,
            "exits": self.exits,
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
        self._copied: set[int] = set()  # names the current statement only copies (see _reference_copies)
        self.user_functions = {s.name for s in analysis.module.walk() if s.kind is ScopeKind.FUNCTION}
        # variables some nested function/lambda/generator reads or writes: writing one is visible
        self.captured: set[tuple] = set()
        for binding in analysis.bindings():
            for occ in binding.occurrences:
                scope: Scope | None = occ.scope
                while scope is not binding.scope and scope is not None:
                    if scope.kind is not ScopeKind.COMPREHENSION or isinstance(scope.node, ast.GeneratorExp):
                        self.captured.add(_key(binding, binding.name))
                        break
                    scope = scope.parent

    # -- per-function facts (cached) -------------------------------------------------------------------
    def value_kinds(self, scope: Scope) -> dict[str, str]:
        """int/str kinds of the locals of ``scope`` (empty outside functions)."""
        if isinstance(scope.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return function_value_kinds(self.analysis, scope.node)
        return {}

    def bound_before(self, stmt: ast.stmt, scope: Scope) -> AbstractSet[str]:
        """Local names bound on every path to ``stmt`` (empty outside functions)."""
        if scope.kind is not ScopeKind.FUNCTION:
            return frozenset()
        key = ("definitely_bound", scope.id)
        if key not in self.analysis.memo:
            from procure_trl.analysis.dataflow import definitely_bound

            self.analysis.memo[key] = definitely_bound(self.analysis, scope)
        return self.analysis.memo[key].get(id(stmt), frozenset())

    def _builtin(self, func: ast.AST, names: frozenset[str]) -> str | None:
        if isinstance(func, ast.Name) and func.id in names and func.id not in self.shadowed:
            if self.analysis.binding_at(func) is None:
                return func.id
        return None

    # -- effects ----------------------------------------------------------------------------------------
    def effects(self, stmt: ast.stmt, scope: Scope) -> StatementEffects:
        eff = StatementEffects()
        kinds = self.value_kinds(scope)
        consumed: set[int] = set()  # generator expressions consumed by the call they are passed to
        self._copied = _reference_copies(stmt)
        self._visit(stmt, scope, kinds, eff, consumed)
        if isinstance(stmt, _COMPOUND):
            eff.may_raise = True
        elif not eff.may_raise:
            eff.may_raise = self._may_raise(stmt, scope, kinds)
        return eff

    def _visit(
        self, node: ast.AST, scope: Scope, kinds: dict[str, str], eff: StatementEffects, consumed: set[int]
    ) -> None:
        analysis = self.analysis
        if isinstance(node, _CONTROL):
            eff.control = True
        if isinstance(node, _EXITS):
            eff.exits = True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            parts = [*node.decorator_list, *args.defaults, *[d for d in args.kw_defaults if d is not None]]
            if not analysis.future_annotations:
                every = (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg)
                parts += [a.annotation for a in every if a is not None and a.annotation is not None]
                parts += [node.returns] if node.returns is not None else []
            for part in parts:
                self._visit(part, scope, kinds, eff, consumed)
            if node.decorator_list:
                eff.heap_write = eff.io = eff.may_raise = True  # a decorator is arbitrary code
            self._write(node.name, scope.bindings.get(node.name), scope, eff)
            return
        if isinstance(node, ast.Lambda):
            for d in (*node.args.defaults, *[d for d in node.args.kw_defaults if d is not None]):
                self._visit(d, scope, kinds, eff, consumed)
            self._lambda_body(node, eff)
            return
        if isinstance(node, ast.GeneratorExp) and id(node) not in consumed:
            eff.heap_write = eff.io = True  # lazy: it runs whenever someone consumes it
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            tops = [m.split(".")[0] for m in modules]
            stdlib = all(top in sys.stdlib_module_names and top not in _IMPORTS_WITH_OUTPUT for top in tops)
            if not stdlib or any(a.name == "*" for a in node.names) or isinstance(node, ast.ImportFrom) and node.level:
                eff.heap_write = eff.io = eff.may_raise = True
            for alias in node.names:
                name = (alias.asname or alias.name).split(".")[0]
                self._write(name, scope.bindings.get(name), scope, eff)
            return
        if isinstance(node, ast.Name):
            binding = analysis.binding_at(node)
            if isinstance(node.ctx, ast.Load):
                eff.reads.add(_key(binding, node.id))
                eff.read_names.add(node.id)
                local = binding is not None and binding.scope is scope
                if binding is None and node.id in BUILTIN_NAMES and node.id not in self.shadowed:
                    pass  # a builtin function or type: no statement of the program changes it
                elif local and id(node) in self._copied and _key(binding, node.id) not in self.captured:
                    pass  # ``y = x``: copies the reference; whatever the other does to the object, y sees it too
                elif not local or kinds.get(node.id) not in (INT, STR):
                    eff.reads_mutable = True
            else:
                self._write(node.id, binding, scope, eff)
            return
        if isinstance(node, ast.NamedExpr):
            self._visit(node.value, scope, kinds, eff, consumed)
            self._visit(node.target, scope, kinds, eff, consumed)
            return
        if isinstance(node, (ast.Attribute, ast.Subscript)) and not isinstance(node.ctx, ast.Load):
            eff.heap_write = True
        if isinstance(node, ast.AugAssign):
            target = node.target
            if isinstance(target, ast.Name):
                eff.reads.add(_key(analysis.binding_at(target), target.id))
                eff.read_names.add(target.id)
                if kinds.get(target.id) not in (INT, STR):
                    eff.heap_write = True  # += may mutate a list (or call __iadd__) in place
            else:
                eff.heap_write = True
        if isinstance(node, ast.Call):
            self._call(node, eff, consumed)
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope, kinds, eff, consumed)

    def _write(self, name: str, binding, scope: Scope, eff: StatementEffects) -> None:
        key = _key(binding, name)
        eff.writes.add(key)
        eff.write_names.add(name)
        if scope.kind is ScopeKind.MODULE and (binding is None or binding.scope is scope):
            eff.writes_module = True
        elif binding is None or binding.scope is not scope or not scope.is_function_like or key in self.captured:
            eff.writes_visible = True  # class attribute, global, or closure cell

    def _call(self, call: ast.Call, eff: StatementEffects, consumed: set[int]) -> None:
        func = call.func
        arguments = [*call.args, *[k.value for k in call.keywords]]
        for arg in arguments:
            if isinstance(arg, ast.GeneratorExp):
                consumed.add(id(arg))
        if self._builtin(func, PURE_BUILTINS | LAZY_BUILTINS):
            return  # the arguments themselves are visited by the caller
        name = self._builtin(func, ITERATING_BUILTINS)
        if name:
            comparing = name in ("min", "max") and len(call.args) >= 2  # min(a, b) compares, iterates nothing
            for arg in call.args:
                if not comparing and not _surely_not_iterator(arg, self):
                    eff.heap_write = True
            for kw in call.keywords:
                if isinstance(kw.value, ast.Lambda):
                    continue  # its body is checked by _lambda_body
                if kw.arg in ("key", "default", "start", "reverse") and isinstance(kw.value, ast.Constant):
                    continue
                eff.heap_write = eff.io = True  # key=some_function: unknown code
            return
        if self._builtin(func, IO_BUILTINS):
            eff.io = True
            return
        if isinstance(func, ast.Attribute) and func.attr in PURE_METHODS and func.attr not in self.user_functions:
            if func.attr == "join":
                for arg in call.args:
                    if not _surely_not_iterator(arg, self):
                        eff.heap_write = True
            return
        eff.heap_write = eff.io = True  # unknown code: a user function, a mutating method, an import...

    def _lambda_body(self, lam: ast.Lambda, eff: StatementEffects) -> None:
        """A lambda may be called during the statement: anything but pure calls in it is unknown code."""
        for node in ast.walk(lam.body):
            if isinstance(node, ast.Call):
                pure = self._builtin(node.func, PURE_BUILTINS) or (
                    isinstance(node.func, ast.Attribute)
                    and node.func.attr in PURE_METHODS
                    and node.func.attr not in self.user_functions
                )
                if not pure:
                    eff.heap_write = eff.io = True
            elif isinstance(node, (ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Await)):
                eff.heap_write = eff.io = True

    # -- exceptions -------------------------------------------------------------------------------------
    def _may_raise(self, stmt: ast.stmt, scope: Scope, kinds: dict[str, str]) -> bool:
        if isinstance(stmt, ast.Pass):
            return False
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return False  # stdlib imports (others were marked when visited)
        bound = _LazyNames(lambda: self.bound_before(stmt, scope))
        safe = lambda e: _safe_expression(e, scope, kinds, bound, self.shadowed)  # noqa: E731
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = stmt.args
            values = [*stmt.decorator_list, *args.defaults, *[d for d in args.kw_defaults if d is not None]]
            if not self.analysis.future_annotations:
                values += [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.annotation]
                values += [stmt.returns] if stmt.returns else []
            return not all(isinstance(v, ast.Constant) or safe(v) for v in values)
        if isinstance(stmt, ast.Assign):
            if all(isinstance(t, ast.Name) for t in stmt.targets):
                return not safe(stmt.value)
            # ``i, j = 0, len(s) - 1``: names unpacked from a tuple display of as many elements
            pairs = unpacked_pairs(stmt.targets[0], stmt.value) if len(stmt.targets) == 1 else None
            return not (pairs is not None and all(isinstance(t, ast.Name) for t, _ in pairs) and safe(stmt.value))
        if isinstance(stmt, ast.AnnAssign):
            return not (isinstance(stmt.target, ast.Name) and stmt.value is not None and safe(stmt.value))
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            as_binop = ast.BinOp(left=ast.Name(stmt.target.id, ast.Load()), op=stmt.op, right=stmt.value)
            return not (stmt.target.id in bound and _safe_local(stmt.target.id, scope) and safe(as_binop))
        return True


def _reference_copies(stmt: ast.stmt) -> set[int]:
    """ids of the names that ``y = x`` / ``a, b = x, y`` (targets plain names) only copy: the statement
    reads which object the name holds, not what is inside it."""
    if not (isinstance(stmt, ast.Assign) and all(isinstance(t, (ast.Name, ast.Tuple)) for t in stmt.targets)):
        return set()
    value = stmt.value
    names = value.elts if isinstance(value, ast.Tuple) else [value]
    return {id(n) for n in names if isinstance(n, ast.Name)}


class _LazyNames:
    """A set of names computed on first membership test (the must-analysis is only run when needed)."""

    def __init__(self, compute) -> None:
        self._compute = compute
        self._names: AbstractSet[str] | None = None

    def __contains__(self, name: str) -> bool:
        if self._names is None:
            self._names = self._compute()
        return name in self._names


def _surely_not_iterator(arg: ast.AST, analyzer: EffectAnalyzer) -> bool:
    """True when ``arg`` cannot be an iterator (iterating it changes nothing)."""
    if isinstance(
        arg,
        (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp, ast.Constant, ast.JoinedStr)
    ):
        return True
    if isinstance(arg, ast.GeneratorExp):
        return True  # created and consumed right here
    if isinstance(arg, ast.Call) and analyzer._builtin(
        arg.func, frozenset({"range", "list", "sorted", "set", "tuple", "str", "dict"})
    ):
        return True
    if (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
            and arg.func.attr in {"split", "keys", "values", "items"}):
        return True  # lists and dict views are re-iterable
    return False


def _safe_local(name: str, scope: Scope) -> bool:
    binding = scope.bindings.get(name)
    return binding is not None and BindingKind.DELETE not in binding.kinds


_CONSTANT_FOLDABLE = frozenset(
    {"int", "float", "str", "bool", "complex", "abs", "ord", "chr", "len", "tuple", "frozenset"}
)


def _small_int_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value <= 10**6


_FOLDABLE_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


def _folds_without_error(node: ast.AST) -> bool:
    """``node`` is arithmetic on int/float literals (small enough to evaluate at once) that does not raise."""

    def number(n: ast.AST):
        # ints and floats, not bools (ast.Constant holds no other int subclass)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool) \
                and abs(n.value) <= 10**6:
            return n.value
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            value = number(n.operand)
            return None if value is None else -value
        if isinstance(n, ast.BinOp) and isinstance(n.op, _FOLDABLE_OPS):
            left, right = number(n.left), number(n.right)
            if left is None or right is None or isinstance(n.op, ast.Pow) and not (0 <= right <= 64):
                return None
            try:
                value = _FOLD[type(n.op)](left, right)
            except (ArithmeticError, ValueError):
                return None
            return value if type(value) in (int, float) and abs(value) <= 10**40 else None
        return None

    return number(node) is not None


_FOLD = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a ** b,
}


_EMPTY_CONSTRUCTORS = frozenset({"set", "list", "dict", "tuple", "str", "int", "float", "bool", "frozenset"})


def _safe_expression(
    node: ast.AST, scope: Scope, kinds: dict[str, str], bound, shadowed: frozenset[str] = frozenset()
) -> bool:
    """Evaluating ``node`` cannot raise: literals, empty builtin containers (``set()``), locals bound on
    every path (never deleted), and int/str operations that cannot fail on such values."""

    def safe(n: ast.AST) -> bool:
        return _safe_expression(n, scope, kinds, bound, shadowed)

    def kind(n: ast.AST) -> str | None:
        return expression_kind(n, kinds)

    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        if node.id in BUILTIN_NAMES and node.id not in shadowed:
            return True  # a builtin nobody rebinds (int, str, None-like names) is always there
        if not (node.id in bound or node.id in scope.parameters):
            return False
        return _safe_local(node.id, scope)
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(not isinstance(e, ast.Starred) and safe(e) for e in node.elts)
    if isinstance(node, ast.Set):
        return all(safe(e) and (isinstance(e, ast.Constant) or kind(e) in (INT, STR)) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(
            k is not None and safe(k) and (isinstance(k, ast.Constant) or kind(k) in (INT, STR)) for k in node.keys
        ) and all(safe(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        if _folds_without_error(node):
            return True  # 22 / 7, 10 ** 9 + 7: arithmetic on number literals, tried now
        if not (safe(node.left) and safe(node.right)):
            return False
        if (
            isinstance(node.op, ast.Mult)
            and _small_int_constant(node.right)
            and isinstance(node.left, (ast.List, ast.Tuple))
        ):
            return True  # [0] * 26
        left, right = kind(node.left), kind(node.right)
        if left == INT and right == INT:
            if isinstance(node.op, _SAFE_INT_OPS):
                return True
            if isinstance(node.op, (ast.FloorDiv, ast.Mod)):
                return isinstance(node.right, ast.Constant) and node.right.value not in (0, False)
            return False
        return left == STR and right == STR and isinstance(node.op, ast.Add)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return safe(node.operand) and kind(node.operand) in (INT, STR)
        return safe(node.operand) and kind(node.operand) == INT
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        if not all(safe(o) for o in operands):
            return False
        if all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
            return True
        operand_kinds = {kind(o) for o in operands}
        equality = all(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops)
        return operand_kinds in ({INT}, {STR}) or (equality and operand_kinds <= {INT, STR})
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in shadowed:
        if node.func.id in _EMPTY_CONSTRUCTORS and not node.args and not node.keywords:
            return True
        if (
            node.func.id in _CONSTANT_FOLDABLE
            and not node.keywords
            and all(isinstance(a, ast.Constant) for a in node.args)
        ):
            # float('inf'), int('12'), str(5): deterministic builtins of constants -- try them now
            try:
                getattr(builtins, node.func.id)(*[a.value for a in node.args if isinstance(a, ast.Constant)])
            except Exception:
                return False
            return True
        if node.func.id == "len" and len(node.args) == 1 and not node.keywords:
            return safe(node.args[0]) and kind(node.args[0]) == STR
    return False


def independent(a: StatementEffects, b: StatementEffects, *, inside_try: bool) -> tuple[bool, str]:
    """Can two adjacent statements with these effects be swapped? Returns (ok, reason-if-not)."""
    if a.control or b.control:
        return False, "control transfer"
    if a.writes & (b.reads | b.writes) or b.writes & a.reads:
        return False, "data dependency"
    pairs = ((a, b), (b, a))
    for x, y in pairs:
        if x.exits and not (y.silent and not y.may_raise and not inside_try):
            return False, "may leave the function while the other is observable"
    if (a.heap_write or a.io) and (b.heap_write or b.io):
        return False, "both have side effects"
    for x, y in pairs:
        if (x.writes_visible or x.writes_module) and y.io:
            return False, "binds a name that the other's unknown code may read"
        if x.heap_write and (y.reads_mutable or y.may_raise):
            return False, "side effect on a value the other may read"
    if a.may_raise and b.may_raise:
        return False, "both may raise"
    if (a.may_raise or b.may_raise) and inside_try:
        return False, "may raise inside a try block"
    for x, y in pairs:
        if x.may_raise and not y.silent:
            return False, "one may raise, the other has side effects"
    return True, ""
