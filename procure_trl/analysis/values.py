"""A tiny, sound value-kind inference: which local names always hold an ``int`` (or always a ``str``).

Used where a rewrite is only exact for totally ordered, NaN-free values -- complementing ``a < b`` into
``a >= b`` is wrong for floats (``nan``) and sets -- and where ``x += 1`` must be known not to mutate a
shared object in place. Anything not provably int/str is "unknown".
"""

from __future__ import annotations

import ast

INT = "int"
STR = "str"

# (not round(): it calls __round__, which may return anything, e.g. a NaN numpy float)
_INT_CALLS = frozenset({"len", "ord", "int"})
_STR_CALLS = frozenset({"str", "chr", "repr", "hex", "oct", "bin", "format"})
_STR_METHODS = frozenset({
    "lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize", "swapcase", "replace", "join", "zfill",
    "casefold"
})
_INT_OPS = (
    ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.LShift, ast.RShift, ast.BitAnd, ast.BitOr, ast.BitXor
)


def expression_kind(node: ast.AST, names: dict[str, str], shadowed: frozenset[str] = frozenset()) -> str | None:
    """``INT``/``STR`` when ``node`` provably evaluates to that type (given ``names``' kinds), else None.

    ``shadowed`` lists builtin names the program rebinds (then ``len(...)`` proves nothing).
    """
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or isinstance(node.value, int):
            return INT
        if isinstance(node.value, str):
            return STR
        return None
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.JoinedStr):
        return STR
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if isinstance(func, ast.Name) and func.id not in shadowed:
            if func.id in _INT_CALLS:
                return INT
            if func.id in _STR_CALLS:
                return STR
        if isinstance(func, ast.Attribute) and func.attr in _STR_METHODS:
            if expression_kind(func.value, names, shadowed) == STR:
                return STR
        return None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)):
        return INT if expression_kind(node.operand, names, shadowed) == INT else None
    if isinstance(node, ast.BinOp):
        left = expression_kind(node.left, names, shadowed)
        right = expression_kind(node.right, names, shadowed)
        if left == INT and right == INT and isinstance(node.op, _INT_OPS):
            return INT
        if left == STR and right == STR and isinstance(node.op, ast.Add):
            return STR
        if isinstance(node.op, ast.Mult) and {left, right} == {STR, INT}:
            return STR
        if isinstance(node.op, ast.Mod) and left == STR and isinstance(node.left, ast.Constant):
            return STR  # "%d" % x formatting
        return None
    if isinstance(node, ast.Subscript) and expression_kind(node.value, names, shadowed) == STR:
        return STR  # s[i] and s[a:b] of a str are str
    return None


def unpacked_pairs(target: ast.AST, value: ast.AST) -> list[tuple[ast.expr, ast.expr]] | None:
    """``a, b = x, y``: the (target, value) element pairs when names are unpacked element by element from a
    display of the same length, else None."""
    if not (isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))):
        return None
    if len(target.elts) != len(value.elts) or any(isinstance(e, ast.Starred) for e in (*target.elts, *value.elts)):
        return None
    return list(zip(target.elts, value.elts))


def _assignments(
    func: ast.AST, shadowed: frozenset[str] = frozenset()
) -> tuple[dict[str, list[ast.AST | str]], set[str]]:
    """Every value assigned to each plain local name of ``func`` (not descending into nested scopes).

    Returns (name -> list of value nodes or the marker "unknown"), and names that must be unknown.
    """
    values: dict[str, list] = {}
    unknown: set[str] = set()

    def add(target: ast.AST, value) -> None:
        if isinstance(target, ast.Name):
            values.setdefault(target.id, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                add(elt.value if isinstance(elt, ast.Starred) else elt, "unknown")
        # attribute/subscript targets bind no name

    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            if not isinstance(node, ast.Lambda):
                unknown.add(node.name)
            continue  # nested scopes: their own names
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue  # comprehension variables are their own scope
        if isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = unpacked_pairs(target, node.value)
                if pairs is not None:
                    for name, value in pairs:  # i, j = 0, len(s) - 1
                        add(name, value)
                else:
                    add(target, node.value if isinstance(target, ast.Name) else "unknown")
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            add(node.target, node.value)
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                values.setdefault(node.target.id, []).append(("aug", node.op, node.value))
        elif isinstance(node, ast.NamedExpr):
            add(node.target, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            it = node.iter
            is_range = (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                        and "range" not in shadowed)
            add(node.target, ("range",) if is_range and isinstance(node.target, ast.Name) else "unknown")
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    add(item.optional_vars, "unknown")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            unknown.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                unknown.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            unknown.update(node.names)
        elif isinstance(node, ast.Delete):
            pass  # deleting does not change the type of later values
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            unknown.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            unknown.add(node.rest)
        stack.extend(ast.iter_child_nodes(node))
    return values, unknown


def local_value_kinds(
    func: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, shadowed: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Names of ``func`` (parameters excluded: callers choose them) that hold an int, resp. a str, after
    every assignment -- a greatest fixpoint over the assignments, so ``i = 0; i += 1`` is ``int``."""
    values, unknown = _assignments(func, shadowed)
    params = {a.arg for a in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs)}
    for star in (func.args.vararg, func.args.kwarg):
        if star is not None:
            params.add(star.arg)
    candidates = {n for n in values if n not in unknown and n not in params}
    # optimistic start: a candidate takes the kind of an assignment computable from what is claimed so
    # far (repeated, so "t = s + 'x'" learns from "s = ''"); the refinement below then removes every
    # claim some assignment breaks, which leaves an inductive invariant -- sound whatever the guesses
    kinds: dict[str, str] = {}
    grew = True
    while grew:
        grew = False
        for name in sorted(candidates - kinds.keys()):
            for v in values[name]:
                kind = (
                    INT if v == ("range",) else expression_kind(v, kinds, shadowed) if isinstance(v, ast.AST) else None
                )
                if not kind:
                    continue
                kinds[name] = kind
                grew = True
                break
    changed = True
    while changed:
        changed = False
        for name in list(kinds):
            ok = True
            for v in values[name]:
                k: str | None
                if v == ("range",):
                    k = INT
                elif isinstance(v, tuple) and v and v[0] == "aug":
                    _, op, rhs = v
                    k = expression_kind(ast.BinOp(ast.Name(name, ast.Load()), op, rhs), kinds, shadowed)
                elif isinstance(v, ast.AST):
                    k = expression_kind(v, kinds, shadowed)
                else:
                    k = None
                if k != kinds[name]:
                    ok = False
                    break
            if not ok:
                del kinds[name]
                changed = True
    return kinds


def function_value_kinds(analysis, function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> dict[str, str]:
    """:func:`local_value_kinds` of ``function`` (a def node of ``analysis``), computed once per program."""
    key = ("value_kinds", id(function))
    if key not in analysis.memo:
        analysis.memo[key] = local_value_kinds(function, analysis.shadowed_builtins)
    return analysis.memo[key]


def kinds_at(analysis, node: ast.AST) -> dict[str, str]:
    """Value kinds valid where ``node`` is evaluated: those of the enclosing function when ``node`` is
    directly in its body, nothing inside lambdas, classes or comprehensions (their names may differ)."""
    parents = analysis.parents
    current = parents.get(id(node))
    while current is not None:
        if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return function_value_kinds(analysis, current)
        if isinstance(current, (ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return {}
        current = parents.get(id(current))
    return {}
