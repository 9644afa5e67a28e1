"""Scopes and name resolution, checked against CPython's own ``symtable`` and on targeted programs."""

from __future__ import annotations

import symtable
import textwrap
from collections import Counter

import pytest
from mbpp_data import corpus_programs

from procure_trl.analysis.program import InvalidProgramError, load_program
from procure_trl.analysis.scopes import (
    OccurrenceKind,
    ScopeKind,
    analyze_scopes,
    private_parameter_scopes,
    renameable_bindings,
)
from procure_trl.analysis.spans import Edit, SourceMap, apply_edits

_SYMTABLE_NAMES = {
    "ListComp": "listcomp", "SetComp": "setcomp", "DictComp": "dictcomp", "GeneratorExp": "genexpr",
    "<lambda>": "lambda"
}


def _symtable_scopes(source: str) -> Counter:
    out: Counter = Counter()

    def walk(table) -> None:
        if table.get_type() in ("function", "class"):
            local = frozenset(s.get_name() for s in table.get_symbols() if s.is_local() and s.get_name() != ".0")
            out[(table.get_type(), table.get_name(), local)] += 1
        for child in table.get_children():
            walk(child)

    walk(symtable.symtable(source, "<p>", "exec"))
    return out


def _our_scopes(source: str) -> Counter:
    out: Counter = Counter()
    for scope in analyze_scopes(source).module.walk():
        if scope.kind is ScopeKind.MODULE:
            continue
        kind = "class" if scope.kind is ScopeKind.CLASS else "function"
        name = _SYMTABLE_NAMES.get(scope.name, scope.name)
        out[(kind, name, frozenset(scope.bindings))] += 1
    return out


def test_local_names_match_symtable_on_the_corpus():
    """Every function/class/comprehension/lambda scope binds exactly the names CPython says it does."""
    mismatches = []
    for task_id, source in corpus_programs():
        if _our_scopes(source) != _symtable_scopes(source):
            mismatches.append(task_id)
    assert not mismatches, mismatches[:5]


TRICKY = textwrap.dedent(
    """
    import os.path as osp, sys
    from math import *
    g = 1
    class C:
        attr = g
        items = [attr2 for attr2 in range(3)]
        def method(self, a, /, b, *args, c=g, **kw):
            global g
            g = a
            def inner():
                nonlocal b
                b = 2
                return b
            return [x for x in args if (found := x)], found
    async def co(x: "int") -> None:
        async with x as y:
            pass
        try:
            del x
        except Exception as err:
            raise
        match y:
            case [first, *rest] if first:
                pass
            case {"k": v, **others}:
                pass
            case Point(x=px) as whole:
                pass
    lam = lambda q, r=g: q + r
    """
)


def test_tricky_program_matches_symtable():
    assert _our_scopes(TRICKY) == _symtable_scopes(TRICKY)


def test_resolution_rules():
    analysis = analyze_scopes(TRICKY)
    by_name = {(s.kind, s.name): s for s in analysis.module.walk()}
    method = by_name[(ScopeKind.FUNCTION, "method")]
    inner = by_name[(ScopeKind.FUNCTION, "inner")]
    # nonlocal b in inner resolves to method's parameter
    b_in_inner = [o for o in analysis.occurrences if o.scope is inner and o.name == "b"]
    assert b_in_inner and all(o.binding is method.bindings["b"] for o in b_in_inner)
    # global g: method's g is the module's g
    assert "g" not in method.bindings
    assert all(
        o.binding is analysis.module.bindings["g"] for o in analysis.occurrences if o.scope is method and o.name == "g"
    )
    # the walrus inside the comprehension binds in method
    assert "found" in method.bindings
    # default value c=g is evaluated in the class scope; C.attr's g is the module g
    klass = by_name[(ScopeKind.CLASS, "C")]
    assert klass.bindings.keys() >= {"attr", "items", "method"}
    assert method.positional_only == {"self", "a"} and method.star_parameters == {"args", "kw"}
    # a comprehension in a class body cannot see class attributes (attr2 is its own; range is builtin)
    assert [o.binding for o in analysis.occurrences if o.name == "range"] == [None]
    assert analysis.has_star_import


def test_class_scope_is_skipped_for_free_names():
    source = textwrap.dedent(
        """
        def outer():
            v = 1
            class K:
                v = 2
                def get(self):
                    return v
            return K().get()
        """
    )
    analysis = analyze_scopes(source)
    get_v = [o for o in analysis.occurrences if o.name == "v" and o.kind is OccurrenceKind.LOAD]
    assert len(get_v) == 1 and get_v[0].binding.scope.name == "outer"


def test_occurrence_spans_are_exact_with_non_ascii_and_crlf():
    source = "def f(é):\r\n    naïve = é + 'ü'  # ß\r\n    return naïve\r\n"
    analysis = analyze_scopes(source)
    for occ in analysis.occurrences:
        if occ.span is not None:
            assert source[occ.span[0] : occ.span[1]] == occ.name


def test_renameable_rules():
    source = textwrap.dedent(
        """
        TOP = 1
        def entry(a, b, /, c, *rest, **opts):
            local = a + c
            keep = sorted(rest, key=lambda item: -item)
            def helper(p):
                return p * 2
            def escapes(q):
                return q
            result = helper(local) + len(keep)
            return result, escapes, opts
        def dyn(x):
            y = x
            return eval("y")
        """
    )
    analysis = analyze_scopes(source)
    names = {(b.scope.name, b.name) for b in renameable_bindings(analysis)}
    assert ("entry", "local") in names and ("entry", "result") in names and ("entry", "keep") in names
    assert ("entry", "a") in names and ("entry", "b") in names  # positional-only
    assert ("entry", "rest") in names and ("entry", "opts") in names  # *args / **kwargs
    assert ("entry", "c") not in names  # may be passed by keyword
    assert ("<lambda>", "item") in names  # lambda handed to a builtin
    assert ("helper", "p") in names  # nested, only ever called positionally
    assert ("escapes", "q") not in names  # returned: callers may use keywords
    assert ("entry", "helper") not in names  # def names are not renamed
    assert not any(scope == "dyn" for scope, _ in names)  # eval reads names at run time
    assert not any(name == "TOP" for _, name in names)  # module level is public
    assert renameable_bindings(analysis, {"local"}) and ("entry", "local") not in {
        (b.scope.name, b.name) for b in renameable_bindings(analysis, {"local"})
    }


def test_private_parameter_scopes_only_for_positional_calls():
    source = textwrap.dedent(
        """
        def f(n):
            def g(x):
                return x
            def h(y):
                return y
            return g(n) + h(y=n)
        """
    )
    analysis = analyze_scopes(source)
    private = {s.name for s in analysis.module.walk() if s.id in private_parameter_scopes(analysis)}
    assert private == {"g"}


def test_invalid_program_error_names_line_and_fix():
    with pytest.raises(InvalidProgramError, match=r"line 1, column 7.*Pass the full program"):
        load_program("def f(:\n    return 1\n")
    with pytest.raises(InvalidProgramError, match="line 3"):
        load_program("x = 1\ny = 2\nz = (\n")
    assert issubclass(InvalidProgramError, ValueError)


def test_source_map_and_apply_edits():
    source = "é = 1\nb = é\n"
    smap = SourceMap(source)
    assert smap.offset(2, len(b"b = ")) == source.index("é", 2)
    assert smap.offset(1, len("é".encode())) == 1
    new, spans = apply_edits(source, [Edit(0, 1, "alpha"), Edit(10, 11, "alpha")])
    assert new == "alpha = 1\nb = alpha\n"
    assert [new[s:e] for s, e in spans] == ["alpha", "alpha"]
    merged_text, merged = apply_edits("abc", [Edit(0, 1, "X"), Edit(1, 2, "Y")])
    assert merged_text == "XYc" and merged == ((0, 2),)
    with pytest.raises(ValueError, match="overlaps"):
        apply_edits("abc", [Edit(0, 2, "X"), Edit(1, 3, "Y")])
