"""Concept checks: did the candidate make the intended change, and only it?

Each check compares the ASTs of the original and the candidate program; none of them reads what a
generator says it did. A check returns ``None`` when the candidate is a proper instance of the
concept, else a one-line reason (``str``) saying what is wrong.

* renames (``name_random``, ``name_shuffle``): the two trees are equal up to a consistent, one-to-one
  renaming of bindings that keeps every name resolving to the same scope; builtins, attributes and the
  protected names (the entry point) keep their names. ``name_random`` needs fresh names (absent from the
  original), ``name_shuffle`` names taken from the original's own variables.
* ``independent_swap``: the trees are equal except for one block whose statements are the same, in
  another order, and every pair of statements whose order changed is independent (no name one writes
  is read or written by the other; no I/O in both; no ``return``/``raise``/``break``/``continue``/``yield``,
  except two guards ``if x == c1: ... return`` / ``if x == c2: ... return`` with different constants,
  and a guard next to an assignment that cannot raise: literals, names, number-literal arithmetic,
  int arithmetic of locals that only ever hold ints). ``y = x`` reads which object ``x`` names, so it
  is independent of ``x[0] = v`` but not of rebinding ``x``.
  Any permutation is checked pair by pair, so swaps of non-adjacent statements are covered.
* ``if_else_flip``: the trees are equal except for one ``if``/``else`` (or conditional expression)
  whose branches are swapped and whose condition is negated (``not c``, removing a ``not``, an
  inverted comparison, or De Morgan).
* ``def_use_break``: the trees are equal except that some occurrences of one variable ``x`` now read
  ``y``, a fresh name: exactly one definition of ``x`` and precisely the uses it reaches (and that no
  other definition reaches), while another definition of ``x`` keeps its name.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterable, Set
from dataclasses import dataclass, field

from procure_trl.concepts import Concept
from procure_trl.validation.bindings import BUILTIN_SCOPE, Binding, ScopeInfo, identifiers
from procure_trl.validation.reaching import ReachingDefinitions


class Mismatch(Exception):
    """The candidate differs from the original in a way the check does not allow."""


def _where(node: ast.AST) -> str:
    line = getattr(node, "lineno", None)
    return f"line {line}" if line is not None else "somewhere"


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dump(node) -> str:
    if isinstance(node, list):
        return "[" + ", ".join(_dump(n) for n in node) + "]"
    return ast.dump(node) if isinstance(node, ast.AST) else repr(node)


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                out.add(id(first.value))
    return out


# ==================================================================================================
# Renames: equal up to a consistent renaming
# ==================================================================================================


@dataclass
class RenameDiff:
    """How two same-shaped programs differ in their identifiers."""

    mapping: dict[Binding, Binding] = field(default_factory=dict)  # original binding -> candidate binding
    changed_sites: list[tuple[ast.AST, ast.AST, str]] = field(default_factory=list)  # (orig node, cand node, field)
    keyword_pairs: list[tuple[str, str, ast.AST]] = field(default_factory=list)
    docstring_pairs: list[tuple[str, str, ast.AST]] = field(default_factory=list)

    @property
    def renamed(self) -> dict[Binding, Binding]:
        return {old: new for old, new in self.mapping.items() if old[1] != new[1]}


_IDENTIFIER_FIELDS = {
    ast.Name: ("id",),
    ast.arg: ("arg",),
    ast.FunctionDef: ("name",),
    ast.AsyncFunctionDef: ("name",),
    ast.ClassDef: ("name",),
    ast.ExceptHandler: ("name",),
    ast.MatchAs: ("name",),
    ast.MatchStar: ("name",),
    ast.MatchMapping: ("rest",),
}


def rename_diff(original: ast.AST, candidate: ast.AST, *, consistent: bool = True) -> RenameDiff:
    """Compare two trees that may differ only in identifiers; raise :class:`Mismatch` otherwise.

    With ``consistent=True`` every binding must be renamed the same way everywhere, one-to-one, and
    keep resolving to the same scope; with ``False`` the changed occurrences are only collected (the
    def-use check renames part of one variable's occurrences on purpose).
    """
    orig_info, cand_info = ScopeInfo(original), ScopeInfo(candidate)
    diff = RenameDiff()
    reverse: dict[Binding, Binding] = {}
    orig_docs, cand_docs = _docstring_nodes(original), _docstring_nodes(candidate)

    def bind(a_node: ast.AST, b_node: ast.AST, fld: str, a_name: str, b_name: str) -> None:
        a_site, b_site = orig_info.site(a_node, fld), cand_info.site(b_node, fld)
        if not consistent:
            if a_site is None and a_name != b_name:
                raise Mismatch(f"{_where(a_node)}: {a_name!r} became {b_name!r} where no variable is named")
            if a_name != b_name:
                diff.changed_sites.append((a_node, b_node, fld))
            return
        if a_site is None or b_site is None:  # not a binding occurrence we track: must not change
            if a_name != b_name:
                raise Mismatch(f"{_where(a_node)}: {a_name!r} became {b_name!r} where no variable is named")
            return
        a_bind, b_bind = a_site.binding, b_site.binding
        if a_bind[0] != b_bind[0]:
            raise Mismatch(f"{_where(a_node)}: {a_name!r} -> {b_name!r} now refers to a variable of another scope")
        if diff.mapping.setdefault(a_bind, b_bind) != b_bind:
            raise Mismatch(f"{_where(a_node)}: {a_name!r} is renamed inconsistently "
                           f"({diff.mapping[a_bind][1]!r} elsewhere, {b_name!r} here)")
        if reverse.setdefault(b_bind, a_bind) != a_bind:
            raise Mismatch(f"{_where(a_node)}: two different variables ({reverse[b_bind][1]!r} and {a_name!r}) "
                           f"are both renamed to {b_name!r}")
        if a_name != b_name:
            diff.changed_sites.append((a_node, b_node, fld))

    def walk(a, b, parent: ast.AST = original) -> None:
        if isinstance(a, list) or isinstance(b, list):
            if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
                raise Mismatch(f"{_where(parent)}: the program's structure changed "
                               "(a block or argument list has another length)")
            for x, y in zip(a, b):
                walk(x, y, parent)
            return
        if not isinstance(a, ast.AST) or not isinstance(b, ast.AST):
            if type(a) is not type(b) or a != b:
                raise Mismatch(f"{_where(parent)}: a value changed: {_short(a)} -> {_short(b)}")
            return
        if type(a) is not type(b):
            raise Mismatch(f"{_where(a if hasattr(a, 'lineno') else parent)}: "
                           f"a {type(a).__name__} became a {type(b).__name__}")
        if hasattr(a, "lineno"):
            parent = a
        special = _IDENTIFIER_FIELDS.get(type(a), ())
        for name in a._fields:
            va, vb = getattr(a, name), getattr(b, name)
            if name in special:
                if va is None or vb is None:
                    if va != vb:
                        raise Mismatch(f"{_where(a)}: a name was added or removed")
                    continue
                bind(a, b, name, va, vb)
            elif isinstance(a, ast.alias) and name == "asname":
                continue  # handled with the bound name below
            elif isinstance(a, ast.keyword) and name == "arg":
                if va != vb:
                    if va is None or vb is None:
                        raise Mismatch(f"{_where(b)}: a keyword argument changed")
                    diff.keyword_pairs.append((va, vb, a))
            elif isinstance(a, ast.Constant) and name == "value" and id(a) in orig_docs and id(b) in cand_docs:
                if va != vb:
                    diff.docstring_pairs.append((va, vb, a))
            elif isinstance(a, (ast.Global, ast.Nonlocal)) and name == "names":
                if len(va) != len(vb):
                    raise Mismatch(f"{_where(a)}: a global/nonlocal declaration changed")
                for index, (x, y) in enumerate(zip(va, vb)):
                    bind(a, b, f"names[{index}]", x, y)
            elif name in ("kind", "type_comment"):
                continue  # formatting details (u-prefix, type comments)
            else:
                walk(va, vb, parent)
        if isinstance(a, ast.alias) and isinstance(b, ast.alias) and a.name != "*":  # (b: same type as a)
            if a.name != b.name:
                raise Mismatch(f"{_where(a)}: the imported module/name {a.name!r} became {b.name!r}")
            a_bound = a.asname or a.name.split(".")[0]
            b_bound = b.asname or b.name.split(".")[0]
            bind(a, b, "bound", a_bound, b_bound)

    walk(original, candidate)
    return diff


_WORD = re.compile(r"(\W+)")


def _docstring_follows(old: str, new: str, pairs: set[tuple[str, str]]) -> bool:
    """True when ``new`` is ``old`` with some whole words replaced along the renaming."""
    a, b = _WORD.split(old), _WORD.split(new)
    return len(a) == len(b) and all(x == y or (x, y) in pairs for x, y in zip(a, b))


def check_rename(original: ast.AST, candidate: ast.AST, concept: Concept,
                 protected_names: Iterable[str] = ()) -> str | None:
    """``name_random`` / ``name_shuffle``: a consistent renaming of user-defined variables, and nothing else."""
    try:
        diff = rename_diff(original, candidate)
    except Mismatch as err:
        return f"not a pure renaming: {err}"
    renamed = diff.renamed
    if not renamed:
        return "no variable was renamed"
    protected = set(protected_names)
    for scope, old in sorted(renamed):
        if scope == BUILTIN_SCOPE:
            return f"renames {old!r}, which no scope of the program defines (a builtin or undefined name)"
        if scope == 0 and old in protected:
            return f"renames {old!r}, which the tests call (protected)"
    pairs = {(old[1], new[1]) for old, new in renamed.items()}
    for old_kw, new_kw, node in diff.keyword_pairs:
        if (old_kw, new_kw) not in pairs:
            return f"{_where(node)}: keyword argument {old_kw!r} became {new_kw!r}, which no renamed parameter explains"
    for old_doc, new_doc, node in diff.docstring_pairs:
        if not _docstring_follows(old_doc, new_doc, pairs):
            return f"{_where(node)}: the docstring changed beyond the renamed words"
    original_names = identifiers(original)
    new_names = sorted({new[1] for new in renamed.values()})
    if concept == Concept.NAME_RANDOM:
        reused = [n for n in new_names if n in original_names]
        if reused:
            return f"name_random must use fresh names, but {', '.join(map(repr, reused))} already occur in the original"
    elif concept == Concept.NAME_SHUFFLE:
        variables = {binding[1] for binding in diff.mapping if binding[0] != BUILTIN_SCOPE}
        foreign = [n for n in new_names if n not in variables]
        if foreign:
            return (f"name_shuffle must reuse the original's own variable names, but "
                    f"{', '.join(map(repr, foreign))} are new")
    return None


# ==================================================================================================
# Structural changes: one block reordered, or one if/else flipped
# ==================================================================================================

_BLOCK_FIELDS = ("body", "orelse", "finalbody")


@dataclass
class _Change:
    kind: str  # "reorder" | "flip" | "other"
    original: object
    candidate: object
    detail: str = ""


def _structural_changes(a, b, allow) -> list[_Change]:
    """Minimal differing places between two trees; ``allow(kind)`` says which change kinds to look for."""
    changes: list[_Change] = []

    def walk(x, y, field_name: str = "", parent: ast.AST | None = None) -> None:
        if _dump(x) == _dump(y):
            return
        if isinstance(x, ast.AST) and hasattr(x, "lineno"):
            parent = x
        if isinstance(x, list) and isinstance(y, list):
            if allow("reorder") and field_name in _BLOCK_FIELDS and len(x) == len(y) \
                    and sorted(map(_dump, x)) == sorted(map(_dump, y)):
                changes.append(_Change("reorder", x, y))
                return
            if len(x) != len(y):
                where = _where(x[0] if x else parent)  # type: ignore[arg-type]
                changes.append(
                    _Change("other", x, y, f"{where}: a block or list has {len(y)} items instead of {len(x)}")
                )
                return
            for p, q in zip(x, y):
                walk(p, q, field_name, parent)
            return
        if not (isinstance(x, ast.AST) and isinstance(y, ast.AST)) or type(x) is not type(y):
            what = type(x).__name__ if isinstance(x, ast.AST) else _short(x)
            into = type(y).__name__ if isinstance(y, ast.AST) else _short(y)
            changes.append(
                _Change("other", x, y, f"{_where(parent) if parent else 'the module'}: {what} became {into}")
            )
            return
        if allow("flip") and isinstance(x, (ast.If, ast.IfExp)) and isinstance(y, (ast.If, ast.IfExp)) \
                and _is_flip(x, y):
            changes.append(_Change("flip", x, y))
            return
        for name in x._fields:
            if name in ("ctx", "kind", "type_comment"):
                continue
            walk(getattr(x, name), getattr(y, name), name, parent)

    walk(a, b)
    return changes


# -- if/else flip ----------------------------------------------------------------------------------

_INVERSE_OPS = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}


def is_negation(cond: ast.expr, negated: ast.expr) -> bool:
    """True when ``negated`` is a recognised negation of ``cond`` (``not``, inverted comparison, De Morgan)."""
    if isinstance(negated, ast.UnaryOp) and isinstance(negated.op, ast.Not) and _dump(negated.operand) == _dump(cond):
        return True
    if isinstance(cond, ast.UnaryOp) and isinstance(cond.op, ast.Not) and _dump(cond.operand) == _dump(negated):
        return True
    if isinstance(cond, ast.Compare) and isinstance(negated, ast.Compare) and len(cond.ops) == len(negated.ops) == 1:
        inverse = _INVERSE_OPS.get(type(cond.ops[0]))
        return (inverse is not None and isinstance(negated.ops[0], inverse)
                and _dump(cond.left) == _dump(negated.left) and _dump(cond.comparators) == _dump(negated.comparators))
    if isinstance(cond, ast.BoolOp) and isinstance(negated, ast.BoolOp) and type(cond.op) is not type(negated.op) \
            and len(cond.values) == len(negated.values):
        return all(is_negation(p, q) for p, q in zip(cond.values, negated.values))
    if isinstance(cond, ast.Constant) and isinstance(negated, ast.Constant) and isinstance(cond.value, bool):
        return negated.value is (not cond.value)
    return False


def _is_flip(x: ast.If | ast.IfExp, y: ast.If | ast.IfExp) -> bool:
    if not is_negation(x.test, y.test):
        return False
    if isinstance(x, ast.IfExp) or isinstance(y, ast.IfExp):  # (the callers pass two nodes of one type)
        return _dump(x.body) == _dump(y.orelse) and _dump(x.orelse) == _dump(y.body)
    if not x.orelse:  # `if c: A` -> `if not c: pass else: A`
        return (len(y.body) == 1 and isinstance(y.body[0], ast.Pass)) and _dump(y.orelse) == _dump(x.body)
    return _dump(x.body) == _dump(y.orelse) and _dump(x.orelse) == _dump(y.body)


def check_flip(original: ast.AST, candidate: ast.AST, sites: int = 1) -> str | None:
    """``if_else_flip``: exactly ``sites`` if/else statements have their branches swapped and their
    conditions negated."""
    changes = _structural_changes(original, candidate, lambda kind: kind == "flip")
    other = [c for c in changes if c.kind != "flip"]
    flips = [c for c in changes if c.kind == "flip"]
    if other:
        return f"changes besides an if/else flip: {other[0].detail}"
    if not flips:
        return "no if/else was flipped"
    if len(flips) != sites:
        expected = "exactly one" if sites == 1 else f"{sites}"
        return f"{len(flips)} if/else statements were flipped; expected {expected}"
    return None


# -- independent swap ----------------------------------------------------------------------------------

_IO_NAMES = {"print", "input", "open", "exit", "quit"}
_IO_ATTRS = {"write", "writelines", "read", "readline", "readlines", "flush", "seek"}
# methods that do not modify their receiver: calling them reads it only
_PURE_METHODS = {
    "split", "rsplit", "splitlines", "strip", "lstrip", "rstrip", "lower", "upper", "title", "capitalize",
    "casefold", "swapcase", "join", "replace", "find", "rfind", "index", "rindex", "count", "startswith",
    "endswith", "format", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper", "isnumeric",
    "isdecimal", "zfill", "center", "ljust", "rjust", "encode", "decode", "partition", "rpartition",
    "get", "keys", "values", "items", "copy", "most_common", "bit_length", "conjugate", "issubset",
    "issuperset", "isdisjoint", "union", "intersection", "difference", "symmetric_difference",
    "translate", "maketrans", "expandtabs", "hex", "is_integer", "as_integer_ratio",
}
_EXITS = (ast.Return, ast.Raise)  # leave the function: the locals assigned before are dead on that path
_CONTROL = (ast.Break, ast.Continue, ast.Yield, ast.YieldFrom, ast.Await, ast.Global, ast.Nonlocal)


@dataclass
class _Effects:
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)  # names it rebinds or whose object it may mutate
    binds: set[str] = field(default_factory=set)  # names it rebinds (``x = ...``), a subset of ``writes``
    io: bool = False
    control: bool = False  # break/continue/yield/await/global/nonlocal
    exits: bool = False  # return/raise somewhere inside


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _effects(stmt: ast.stmt) -> _Effects:
    """What executing ``stmt`` now reads and writes. Function bodies run later, when called, so only
    what a ``def``/``lambda`` evaluates at definition time counts (decorators, defaults, annotations);
    a call of a user function is opaque here: the tests catch what it does."""
    eff = _Effects()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                eff.writes.add(node.name)
                for expr in node.decorator_list + ([node.returns] if node.returns else []):
                    visit(expr)
            args = node.args
            for expr in args.defaults + [d for d in args.kw_defaults if d is not None]:
                visit(expr)
            for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    visit(arg.annotation)
            return
        if isinstance(node, _CONTROL):
            eff.control = True
        elif isinstance(node, _EXITS):
            eff.exits = True
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                eff.reads.add(node.id)
            else:
                eff.writes.add(node.id)
                eff.binds.add(node.id)
        elif isinstance(node, (ast.Attribute, ast.Subscript)) and not isinstance(node.ctx, ast.Load):
            base = _base_name(node)
            if base:
                eff.writes.add(base)  # x[i] = v, x.a = v, del x[i] mutate x
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            eff.reads.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            eff.writes.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ClassDef):
            eff.writes.add(node.name)  # the class body itself runs now: visited below
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in _IO_NAMES:
                eff.io = True
            if isinstance(func, ast.Attribute):
                if func.attr in _IO_ATTRS:
                    eff.io = True
                if func.attr not in _PURE_METHODS:
                    base = _base_name(func.value)
                    if base:
                        eff.writes.add(base)  # x.append(v), x.sort(), ...: may mutate x
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(stmt)
    return eff


_EMPTY_BUILTINS = {"set", "list", "dict", "tuple", "frozenset", "str", "int", "float", "bool"}


def _bound_names(tree: ast.AST, skip: Set[int] = frozenset()) -> set[str]:
    """Every name the program binds anywhere (so a builtin of that name may be rebound), leaving out the
    name nodes whose ids are in ``skip``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            if id(node) not in skip:
                out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.alias):
            out.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            out.update(node.names)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            out.add(node.name)
    return out


def _is_inert_assignment(stmt: ast.stmt, rebound: Set[str] = frozenset(), ints: Set[str] = frozenset()) -> bool:
    """``x = <literal, name, empty builtin container such as set(), arithmetic on number literals, or
    + - * // (by a literal) of names that only ever hold ints>`` (also ``a, b = <two such>``): cannot
    raise (bar an unbound name) or act on anything but the names it binds. ``rebound``: names the
    program binds (then ``set()`` is not the builtin); ``ints``: the function's int-only names."""
    if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
        value = stmt.value
    elif (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Tuple)
          and isinstance(stmt.value, ast.Tuple) and len(stmt.targets[0].elts) == len(stmt.value.elts)
          and all(isinstance(t, ast.Name) for t in stmt.targets[0].elts)):
        value = stmt.value
    elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        value = stmt.value
    else:
        return False

    def inert(node: ast.AST) -> bool:
        if _number_arithmetic(node) or _int_arithmetic(node, ints):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            return (isinstance(func, ast.Name) and func.id in _EMPTY_BUILTINS and func.id not in rebound
                    and not node.args and not node.keywords)
        return isinstance(node, (ast.Constant, ast.Name, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Load,
                                 ast.UnaryOp, ast.USub, ast.UAdd)) and all(map(inert, ast.iter_child_nodes(node)))

    return inert(value)


def _number_arithmetic(node: ast.AST) -> bool:
    """Arithmetic on int/float literals only (``22 / 7``, ``10 ** 9 + 7``) that evaluates without error."""
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div,
               ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd)
    if not isinstance(node, ast.BinOp):
        return False
    for sub in ast.walk(node):
        if not isinstance(sub, allowed) or isinstance(sub, ast.Constant) and (
                not isinstance(sub.value, (int, float)) or isinstance(sub.value, bool) or abs(sub.value) > 1000):
            return False  # small literals only: 1000 ** 1000 would take a while
    try:
        eval(compile(ast.Expression(node), "<constant>", "eval"), {"__builtins__": {}})
    except (ArithmeticError, ValueError):
        return False
    return True


_INT_OPS = (ast.Add, ast.Sub, ast.Mult, ast.BitAnd, ast.BitOr, ast.BitXor)


def _int_arithmetic(node: ast.AST, ints: Set[str], rebound: Set[str] | None = None) -> bool:
    """``node`` combines int literals and int-only names with operations that cannot fail on ints
    (``//`` and ``%`` only by a non-zero literal). With ``rebound`` (the names the program binds),
    ``len(...)`` also counts: the value is an int, but computing it may fail."""
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.Name):
        return node.id in ints
    if rebound is not None and isinstance(node, ast.Call):
        return (isinstance(node.func, ast.Name) and node.func.id == "len" and "len" not in rebound
                and len(node.args) == 1 and not node.keywords)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)):
        return _int_arithmetic(node.operand, ints, rebound)
    if isinstance(node, ast.BinOp) and _int_arithmetic(node.left, ints, rebound) and _int_arithmetic(
        node.right, ints, rebound
    ):
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)):
            return isinstance(node.right, ast.Constant) and node.right.value != 0
        return isinstance(node.op, _INT_OPS)
    return False


def _own_nodes(function: ast.AST):
    """The nodes of ``function``'s own code: nested functions, classes, lambdas and comprehensions excluded."""
    stack = list(getattr(function, "body", []))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
                                 ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            stack.extend(ast.iter_child_nodes(node))


def _int_names(function: ast.AST, rebound: set[str]) -> set[str]:
    """Local names of ``function`` that hold an int wherever they are bound: each binding assigns an int
    literal, ``len(...)`` or int arithmetic of such names (``x = ...``, ``a, b = c, d``, ``x += ...``), or
    loops over ``range(...)``. A name bound in any other way anywhere in the function (parameters,
    unpacking a call, with/except/import targets, nested scopes, global/nonlocal) is not one. The
    largest such set: names are dropped until every binding is justified by the names that remain."""
    bindings: dict[str, list] = {}
    plain: set[int] = set()  # ids of the Name targets of the bindings above
    for node in _own_nodes(function):
        pairs: list[tuple[ast.Name, ast.expr | str | None]] = []
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    pairs.append((target, node.value))
                elif (isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                      and len(target.elts) == len(node.value.elts)):
                    pairs.extend((t, v) for t, v in zip(target.elts, node.value.elts) if isinstance(t, ast.Name))
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            pairs.append((node.target, ast.BinOp(ast.Name(node.target.id, ast.Load()), node.op, node.value)))
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            over_range = (isinstance(node.iter, ast.Call) and isinstance(node.iter.func, ast.Name)
                          and node.iter.func.id == "range" and "range" not in rebound)
            pairs.append((node.target, "range" if over_range else None))
        for target, value in pairs:
            plain.add(id(target))
            bindings.setdefault(target.id, []).append(value)
    excluded = _bound_names(function, skip=plain)
    ints = set(bindings) - excluded

    def is_int(value) -> bool:
        return value == "range" or isinstance(value, ast.AST) and _int_arithmetic(value, ints, rebound)

    changed = True
    while changed:
        changed = False
        for name in sorted(ints):
            if not all(is_int(v) for v in bindings[name]):
                ints.discard(name)
                changed = True
    return ints


def _equality_guard(stmt: ast.stmt) -> tuple[str, object] | None:
    """``if x == c: ...; return/raise`` (no ``else``; ``x`` a name or ``len(name)``, ``c`` an int or str
    literal): the compared operand and the constant, else None."""
    if not (isinstance(stmt, ast.If) and not stmt.orelse and isinstance(stmt.body[-1], _EXITS)):
        return None
    test = stmt.test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    operand, constant = test.left, test.comparators[0]
    if isinstance(operand, ast.Constant):
        operand, constant = constant, operand
    plain = isinstance(operand, ast.Name) or (
        isinstance(operand, ast.Call) and isinstance(operand.func, ast.Name) and operand.func.id == "len"
        and len(operand.args) == 1 and isinstance(operand.args[0], ast.Name) and not operand.keywords)
    if not plain or not isinstance(constant, ast.Constant) or type(constant.value) not in (int, str):
        return None
    return _dump(operand), constant.value


def _exclusive_guards(first: ast.stmt, second: ast.stmt) -> bool:
    """Two equality guards on the same operand with different constants of one type: at most one body
    runs (and leaves), so their order is unobservable."""
    a, b = _equality_guard(first), _equality_guard(second)
    return a is not None and b is not None and a[0] == b[0] and type(a[1]) is type(b[1]) and a[1] != b[1]


def _copied_name(stmt: ast.stmt) -> str | None:
    """``y = x``: the name ``x`` whose object ``y`` now also names (the object's contents are not read)."""
    if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.Name)):
        return stmt.value.id
    return None


def _data_clash(first: ast.stmt, second: ast.stmt, a: _Effects, b: _Effects) -> set[str]:
    """Names one statement writes that the other reads or writes. A copy ``y = x`` reads which object
    ``x`` names, not what is in it: it clashes with rebinding ``x``, not with ``x.append(...)``."""
    copied = {id(stmt): _copied_name(stmt) for stmt in (first, second)}
    a_reads, b_reads = (e.reads - {copied[id(s)]} for s, e in ((first, a), (second, b)))
    clash = (a.writes & (b_reads | b.writes)) | (b.writes & a_reads)
    for stmt, other in ((first, b), (second, a)):
        name = copied[id(stmt)]
        if name is not None and name in other.binds:
            clash.add(name)
    return clash


def _swap_conflict(first: ast.stmt, second: ast.stmt, rebound: Set[str] = frozenset(),
                   ints: Set[str] = frozenset()) -> str | None:
    a, b = _effects(first), _effects(second)
    if a.control or b.control:
        return "moves a break/continue/yield/await or a global/nonlocal declaration"
    if a.exits and b.exits and _exclusive_guards(first, second):
        pass  # `if n == 0: return 0` / `if n == 1: return 1`: exclusive conditions, at most one returns
    elif a.exits or b.exits:
        # A guard such as `if c: return x` may trade places with an inert local assignment `y = []`:
        # on the path that leaves the function `y` is dead, on the other it is assigned as before.
        # Moving a bare return/raise, or anything that can act, changes what runs.
        exiting, other = (first, second) if a.exits else (second, first)
        if b.exits and a.exits or isinstance(exiting, _EXITS) or not _is_inert_assignment(other, rebound, ints):
            return "moves a statement across a return/raise (control dependence)"
    if a.io and b.io:
        return "reorders two statements that both do I/O"
    clash = _data_clash(first, second, a, b)
    if clash:
        return f"reorders dependent statements (both touch {', '.join(sorted(clash))})"
    return None


def _owner(tree: ast.AST, block: list) -> ast.AST | None:
    """The function whose own code holds ``block`` (a statement list of ``tree``), or None at module level."""
    owner = None

    def visit(node: ast.AST, function: ast.AST | None) -> bool:
        nonlocal owner
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node
        elif isinstance(node, ast.ClassDef):
            function = None  # a class body's names are not locals of the function around it
        for name in _BLOCK_FIELDS:
            if getattr(node, name, None) is block:
                owner = function
                return True
        return any(visit(child, function) for child in ast.iter_child_nodes(node))

    visit(tree, None)
    return owner


def _positions(before: list, after: list) -> list[int]:
    """Where each statement of ``before`` sits in ``after`` (a reordering of it); equal statements keep their
    relative order."""
    places: dict[str, deque[int]] = {}
    for k, stmt in enumerate(after):
        places.setdefault(_dump(stmt), deque()).append(k)
    return [places[_dump(stmt)].popleft() for stmt in before]


def _inversions(position: list[int]) -> list[tuple[int, int]]:
    """The pairs ``i < j`` whose order ``position`` reverses, in order. Only statements that moved can be in
    one (two that stayed keep their order), so a swap in a long block costs a pass per moved statement, not
    one per pair of statements."""
    moved = [i for i, p in enumerate(position) if p != i]
    pairs = {(min(i, k), max(i, k)) for i in moved for k in range(len(position)) if k != i}
    return sorted((i, j) for i, j in pairs if position[i] > position[j])


def check_swap(original: ast.AST, candidate: ast.AST, sites: int = 1) -> str | None:
    """``independent_swap``: one block (at most ``sites`` blocks) holds the same statements in another
    order, each pair whose order changed independent."""
    changes = _structural_changes(original, candidate, lambda kind: kind == "reorder")
    other = [c for c in changes if c.kind != "reorder"]
    if other:
        return f"changes besides reordering statements: {other[0].detail}"
    if not changes:
        return "no statements were reordered"
    if len(changes) > sites:
        expected = "one" if sites == 1 else f"at most {sites}"
        return f"statements were reordered in {len(changes)} blocks; expected {expected}"
    rebound = _bound_names(original)
    moved = 0
    for change in changes:
        before, after = change.original, change.candidate
        if not (isinstance(before, list) and isinstance(after, list)):
            raise TypeError(f"a reorder change must hold two statement lists, got {before!r} and {after!r}")
        position = _positions(before, after)
        moved += sum(p != i for i, p in enumerate(position))
        owner = _owner(original, before)
        ints = _int_names(owner, rebound) if owner is not None else set()
        for i, j in _inversions(position):
            reason = _swap_conflict(before[i], before[j], rebound, ints)
            if reason:
                return f"{_where(before[i])} and {_where(before[j])}: {reason}"
    if sites > 1 and moved != 2 * sites:  # (one site keeps accepting any independent reordering of one block)
        return f"{moved} statements changed places; {sites} swaps of two statements move {2 * sites}"
    return None


# ==================================================================================================
# def-use break
# ==================================================================================================


def check_def_use(original: ast.AST, candidate: ast.AST, sites: int = 1) -> str | None:
    """``def_use_break``: one definition of ``x`` (``sites`` definitions, each with its own fresh name)
    and exactly the uses it reaches now use a fresh name."""
    try:
        diff = rename_diff(original, candidate, consistent=False)
    except Mismatch as err:
        return f"changes besides renaming one definition and its uses: {err}"
    occurrences = diff.changed_sites
    if not occurrences:
        return "no definition was renamed"
    if diff.keyword_pairs or diff.docstring_pairs:
        return "changes keyword arguments or docstrings; def_use_break renames one variable's definition and uses only"
    if any(not isinstance(a, ast.Name) for a, _, _ in occurrences):
        node = next(a for a, _, _ in occurrences if not isinstance(a, ast.Name))
        return f"{_where(node)}: renames a {type(node).__name__} (parameter, function, import...), not a variable"
    groups: dict[str, list] = {}
    for occurrence in occurrences:
        new = occurrence[1]
        if not isinstance(new, ast.Name):  # rename_diff pairs nodes of one type; the original is a Name
            raise TypeError(f"a renamed Name became a {type(new).__name__}")
        groups.setdefault(new.id, []).append(occurrence)
    if sites > 1:
        if len(groups) != sites:
            return f"{len(groups)} definition(s) got a fresh name; expected {sites}"
    elif len(groups) != 1 or len({a.id for a, _, _ in occurrences if isinstance(a, ast.Name)}) != 1:
        old_names = {a.id for a, _, _ in occurrences if isinstance(a, ast.Name)}  # (all are, checked above)
        return (f"renames several variables ({', '.join(sorted(old_names))} -> {', '.join(sorted(groups))}); "
                "expected one definition of one variable")
    info = ScopeInfo(original)
    for group in groups.values():
        reason = _check_split(original, info, group)
        if reason is not None:
            return reason
    return None


def _check_split(original: ast.AST, info: ScopeInfo, sites: list) -> str | None:
    """One split: the occurrences ``sites`` (all renamed to one new name) are one definition and its uses."""
    old_names = {a.id for a, _, _ in sites}
    if len(old_names) != 1:
        return f"one new name {sites[0][1].id!r} replaces several variables ({', '.join(sorted(old_names))})"
    (old,), new = old_names, sites[0][1].id
    if new in identifiers(original):
        return f"the new name {new!r} already occurs in the original; it must be fresh"
    bindings = {info.site(a, "id").binding for a, _, _ in sites}  # type: ignore[union-attr]
    if len(bindings) != 1:
        return f"renames occurrences of {old!r} that belong to different scopes"
    (binding,) = bindings
    if binding[0] == BUILTIN_SCOPE:
        return f"renames {old!r}, which no scope of the program defines"
    scope = info.scopes[binding[0]]
    if scope.kind not in ("module", "function"):
        return f"{old!r} lives in a {scope.kind} scope, where the def-use check does not apply"
    # a variable read by a nested function is read when that function runs: def-use order is unknowable
    for site in info.sites.values():
        if site.binding == binding and site.scope != scope.index and info.scopes[site.scope].kind != "comprehension":
            return (f"{old!r} is used inside a nested function or class ({_where(site.node)}), "
                    "so its uses cannot be ordered")

    def is_var(node: ast.AST) -> bool:
        for fld in ("id", "arg", "name", "bound", "rest"):
            site = info.site(node, fld)
            if site is not None:
                return site.binding == binding
        return False

    reach = ReachingDefinitions(is_var).run(scope.node)
    changed = {id(a) for a, _, _ in sites}
    changed_defs = [d for d in reach.definitions if id(d) in changed]
    aug_targets = {id(n.target) for n in ast.walk(scope.node) if isinstance(n, ast.AugAssign)}
    unreachable = [a for a, _, _ in sites if isinstance(a.ctx, ast.Store) and a not in reach.definitions]
    if unreachable:
        return f"{_where(unreachable[0])}: the renamed definition of {old!r} is unreachable (after a return/raise)"
    roots = [d for d in changed_defs if id(d) not in aug_targets]
    if len(roots) != 1:
        return (f"renames {len(roots)} definitions of {old!r} that start a value; "
                "expected exactly one (plus the augmented assignments that continue it)")
    if len(changed_defs) == len(reach.definitions):
        return f"renames every definition of {old!r}: that is a rename, not a broken def-use chain"
    changed_def_ids = {id(d) for d in changed_defs}
    reached_uses = 0
    for use, reaching in reach.uses.items():
        reaching_ids = {id(d) for d in reaching}
        if id(use) in changed:
            if not reaching_ids:
                return f"{_where(use)}: a renamed use of {old!r} is reached by no definition"
            if not reaching_ids <= changed_def_ids:
                return f"{_where(use)}: a renamed use of {old!r} is also reached by a definition that kept the old name"
            if id(use) not in aug_targets:
                reached_uses += 1
        elif reaching_ids & changed_def_ids:
            return f"{_where(use)}: a use of {old!r} reached by the renamed definition kept the old name"
    unknown = changed - {id(u) for u in reach.uses} - changed_def_ids
    if unknown:
        return f"renames occurrences of {old!r} the def-use analysis does not see"
    if reached_uses == 0:
        return f"the renamed definition of {old!r} reaches no use"
    return None


# ==================================================================================================
# Dispatch
# ==================================================================================================


def check_concept(original: ast.AST, candidate: ast.AST, concept: Concept | str,
                  protected_names: Iterable[str] = (), sites: int = 1) -> str | None:
    """Run the check of ``concept``; ``None`` when the candidate is a proper instance, else the reason.

    ``sites``: how many places the candidate claims to change (if/else flips, swapped pairs, split
    definitions); the renaming checks ignore it (a renaming covers every name it renames).
    """
    parsed = Concept.parse(concept)
    if not isinstance(parsed, Concept):  # a user concept is checked on text and spans (rule_checks)
        raise ValueError(f"{parsed} is defined by ast-grep rules: check it with "
                         "procure_trl.validation.rule_checks.check_rule_rewrite")
    if parsed in (Concept.NAME_RANDOM, Concept.NAME_SHUFFLE):
        return check_rename(original, candidate, parsed, protected_names)
    if parsed == Concept.IF_ELSE_FLIP:
        return check_flip(original, candidate, sites)
    if parsed == Concept.INDEPENDENT_SWAP:
        return check_swap(original, candidate, sites)
    return check_def_use(original, candidate, sites)
