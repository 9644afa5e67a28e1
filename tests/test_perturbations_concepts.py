"""Each perturbation on small programs: exact outputs, spans, details, reasons, API contract."""

from __future__ import annotations

import textwrap

import pytest

from procure_trl.concepts import Concept
from procure_trl.perturbations import (
    PERTURBATIONS,
    InvalidProgramError,
    PerturbationResult,
    def_use_break,
    if_else_flip,
    independent_swap,
    name_random,
    name_shuffle,
    perturb,
)


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _changed(result: PerturbationResult) -> list[str]:
    return [result.code[s:e] for s, e in result.changed_spans]


def test_registry_and_dispatch():
    assert set(PERTURBATIONS) == set(Concept)
    assert PERTURBATIONS[Concept.IF_ELSE_FLIP] is if_else_flip
    source = "def f(x):\n    y = x\n    return y\n"
    assert perturb(source, "name_random", 5) == name_random(source, 5)
    with pytest.raises(ValueError, match="valid concepts are"):
        perturb(source, "no_such_concept")


@pytest.mark.parametrize("concept", list(Concept), ids=str)
def test_unparsable_code_raises_invalid_program_error(concept):
    with pytest.raises(InvalidProgramError, match=r"line 2, column \d+"):
        perturb("def f(x):\n    return x +\n", concept)


def test_not_applicable_results_say_why():
    result = perturb("x = 1\n", Concept.IF_ELSE_FLIP)
    assert not result.applied and result.code is None and result.changed_spans == ()
    assert "no if statement" in result.reason
    assert result.to_dict()["code"] is None


# -- if_else_flip ----------------------------------------------------------------------------------------
def test_flip_statement_with_de_morgan_and_complements():
    source = _src("""
        def f(x, items):
            if x in items and not x is None:
                return 1
            else:
                return 2
        """)
    result = if_else_flip(source)
    assert result.code == _src("""
        def f(x, items):
            if x not in items or x is None:
                return 2
            else:
                return 1
        """)
    assert result.details["kind"] == "if" and result.details["line"] == 2
    assert _changed(result) == ["not in", "or", "x is None", "\n        return 2", "\n        return 1"]


def test_flip_keeps_comments_and_line_breaks_inside_the_condition():
    source = _src("""
        def f(a, b):
            if (a and  # first
                    b):
                r = 1
            else:
                r = 0
            return r
        """)
    result = if_else_flip(source)
    assert "if (not a or  # first\n            not b):" in result.code


def test_flip_elif_chain_flips_the_link_with_an_else():
    source = _src("""
        def sign(n):
            if n > 0:
                s = 1
            elif n == 0:
                s = 0
            else:
                s = -1
            return s
        """)
    result = if_else_flip(source)
    assert result.details["kind"] == "elif" and result.details["in_elif_chain"]
    assert "elif n != 0:\n        s = -1\n    else:\n        s = 0\n" in result.code
    assert "if n > 0:\n        s = 1\n" in result.code


def test_flip_conditional_expression_with_parentheses_where_needed():
    source = "def f(x):\n    return x if x else lambda: 0\n"
    result = if_else_flip(source)
    assert result.code == "def f(x):\n    return (lambda: 0) if not x else x\n"


def test_flip_wraps_parenthesized_conditions_outside_their_parentheses():
    source = "def f(a, b, c):\n    if (a if c else b):\n        return 1\n    else:\n        return 2\n"
    sites = {if_else_flip(source, s).details["kind"]: if_else_flip(source, s) for s in range(4)}
    assert "    if not (a if c else b):\n        return 2\n" in sites["if"].code
    assert "(b if not c else a)" in sites["expression"].code
    glued = if_else_flip("def f(a, b):\n    if(a > b):\n        return a\n    else:\n        return b\n")
    assert "    if not (a > b):\n        return b\n" in glued.code


def test_flip_ordering_only_for_known_ints():
    source = _src("""
        def f(xs, y):
            n = len(xs)
            a = 'big' if n > 3 else 'small'
            b = 'big' if y > 3 else 'small'
            return a, b
        """)
    negated = {if_else_flip(source, s).details["negated_condition"] for s in range(6)}
    assert negated == {"n <= 3", "not (y > 3)"}


# -- independent_swap ------------------------------------------------------------------------------------
def test_swap_exchanges_statement_texts_in_place():
    source = _src("""
        def f(xs):
            out = []   # results
            seen = set()
            for x in xs:
                if x not in seen:
                    seen.add(x)
                    out.append(x)
            return out
        """)
    result = independent_swap(source)
    assert result.code == _src("""
        def f(xs):
            seen = set()   # results
            out = []
            for x in xs:
                if x not in seen:
                    seen.add(x)
                    out.append(x)
            return out
        """)
    assert _changed(result) == ["seen = set()", "out = []"]
    assert result.details["lines"] == [2, 3]


def test_swap_not_applicable_for_dependent_statements():
    source = "def f(x):\n    y = x + 1\n    z = y * 2\n    return z\n"
    result = independent_swap(source)
    assert not result.applied and "independent" in result.reason


def test_swap_of_statements_that_are_not_neighbours():
    source = "def f(a, b):\n    x = [a]\n    y = [b]\n    z = 3\n    return x, y, z\n"
    pairs = {tuple(r.details["lines"]) for r in (independent_swap(source, seed) for seed in range(12))}
    assert pairs == {(2, 3), (3, 4), (2, 4)}  # (2, 4) moves x and z past y, which commutes with both
    far = next(r for r in (independent_swap(source, s) for s in range(12)) if r.details["lines"] == [2, 4])
    assert far.code == "def f(a, b):\n    z = 3\n    y = [b]\n    x = [a]\n    return x, y, z\n"
    assert _changed(far) == ["z = 3", "x = [a]"]


def test_no_swap_across_a_statement_either_one_depends_on():
    # x and z are independent, but y reads x: moving x below y (or z above it) is not a swap
    source = "def f(a):\n    x = [a]\n    y = [x]\n    z = 3\n    return x, y, z\n"
    pairs = {tuple(independent_swap(source, seed).details["lines"]) for seed in range(12)}
    assert pairs == {(3, 4)}


def test_exclusive_equality_guards_swap_but_overlapping_ones_do_not():
    guards = ("def f(n):\n    if n == 0:\n        return 0\n    if n == 1:\n        return 1\n"
              "    return f(n - 1) + f(n - 2)\n")
    result = independent_swap(guards)
    assert result.code == guards.replace("n == 0:\n        return 0", "TMP").replace(
        "n == 1:\n        return 1", "n == 0:\n        return 0").replace("TMP", "n == 1:\n        return 1")
    for condition in ("n < 1", "n == 0 + 0", "m == 1"):  # overlapping, not a constant, another operand
        assert not independent_swap(guards.replace("n == 1", condition).replace("def f(n)", "def f(n, m)")).applied
    falls_through = guards.replace("        return 1\n", "        n = 5\n")
    assert not independent_swap(falls_through).applied  # the body must leave the function


# -- def_use_break ---------------------------------------------------------------------------------------
def test_def_use_break_renames_the_redefinition_and_its_uses():
    source = _src("""
        def f(s):
            s = s.strip()
            words = s.split()
            return words
        """)
    result = def_use_break(source)
    assert result.code == _src("""
        def f(s):
            s2 = s.strip()
            words = s2.split()
            return words
        """)
    assert result.details["variable"] == "s" and result.details["new_name"] == "s2"
    assert _changed(result) == ["s2", "s2"]


def test_def_use_break_fresh_name_avoids_every_identifier():
    source = "def f(x):\n    x2 = 1  # x3 mentioned\n    x = x + x2\n    return x\n"
    result = def_use_break(source)
    assert result.details["new_name"] == "x4"


def test_def_use_break_needs_a_redefinition():
    result = def_use_break("def f(a):\n    b = a\n    return b\n")
    assert not result.applied and "defined twice" in result.reason


# -- naming ----------------------------------------------------------------------------------------------
def test_name_random_renames_every_local_consistently():
    source = _src("""
        def total(values):
            acc = 0
            for v in values:
                acc += v
            return acc
        """)
    result = name_random(source, 3)
    renames = {r["old"]: r["new"] for r in result.details["renames"]}
    assert set(renames) == {"acc", "v"}
    expected = source.replace("acc", renames["acc"]).replace(" v ", f" {renames['v']} ").replace(
        "+= v", f"+= {renames['v']}"
    )
    assert result.code == expected
    assert "def total(values):" in result.code  # a public parameter keeps its name
    assert all(text in renames.values() for text in _changed(result))


def test_name_random_respects_protected_names():
    source = "def f(a):\n    b = a\n    c = b\n    return c\n"
    result = name_random(source, 0, protected_names=["b"])
    assert {r["old"] for r in result.details["renames"]} == {"c"}


def test_name_shuffle_is_a_derangement_of_local_names():
    source = _src("""
        def f(xs):
            first = xs[0]
            last = xs[-1]
            middle = xs[1:-1]
            return first, middle, last
        """)
    for seed in range(5):
        result = name_shuffle(source, seed)
        permutation = {entry["old"]: entry["new"] for entry in result.details["permutation"]}
        assert sorted(permutation) == sorted(permutation.values()) == ["first", "last", "middle"]
        assert all(old != new for old, new in permutation.items())
        namespace: dict = {}
        exec(result.code, namespace)
        assert namespace["f"]([1, 2, 3, 4]) == (1, [2, 3], 4)


def test_name_shuffle_needs_two_names():
    result = name_shuffle("def f(a):\n    b = a\n    return b\n")
    assert not result.applied and "needs two renameable" in result.reason


def test_name_shuffle_never_captures_a_free_name():
    # swapping "a" and "b" in g would make h's free "b" refer to g's variable
    source = _src("""
        def g(n):
            a = n
            b = 2
            def h(a):
                return a + b
            return h(a)
        """)
    for seed in range(5):
        result = name_shuffle(source, seed)
        if result.applied:
            namespace: dict = {}
            exec(result.code, namespace)
            assert namespace["g"](5) == 7, result.code


def test_shuffle_never_produces_duplicate_parameters():
    # f's a (positional-only) may be renamed, its c (public) may not; g's local c is in the pool too, so
    # a derangement may send a -> c: "def f(c, /, c)" parses, but is not valid Python
    source = _src("""
        def f(a, /, c):
            b = a + c
            return b
        def g(x):
            c = x
            return c
        """)
    applied = 0
    for seed in range(8):
        result = name_shuffle(source, seed)
        if result.applied:
            applied += 1
            compile(result.code, "<test>", "exec")
            assert ", /, c):" in result.code
            namespace: dict = {}
            exec(result.code, namespace)
            assert namespace["f"](1, c=2) == 3 and namespace["g"](4) == 4
    assert applied
