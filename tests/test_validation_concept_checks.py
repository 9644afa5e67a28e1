"""The AST concept checks: each accepts a proper instance of its concept and rejects everything else."""

from __future__ import annotations

import ast

import pytest

from procure_trl.concepts import Concept
from procure_trl.validation import check_concept, check_spans, is_negation

ORIGINAL = '''\
def f(xs, k):
    total = 0
    for x in xs:
        if x > k:
            total += x
        else:
            total -= 1
    count = len(xs)
    total = total * 2
    y = total + 1
    return y + count
'''

# one proper instance of each concept, made by hand
PROPER = {
    Concept.NAME_RANDOM: ORIGINAL.replace("total", "acc_q").replace("count", "zz9"),
    Concept.NAME_SHUFFLE: ORIGINAL.replace("total", "TMP").replace("count", "total").replace("TMP", "count"),
    Concept.IF_ELSE_FLIP: ORIGINAL.replace(
        "if x > k:\n            total += x\n        else:\n            total -= 1",
        "if x <= k:\n            total -= 1\n        else:\n            total += x"),
    Concept.INDEPENDENT_SWAP: ORIGINAL.replace("    count = len(xs)\n    total = total * 2\n",
                                               "    total = total * 2\n    count = len(xs)\n"),
    Concept.DEF_USE_BREAK: ORIGINAL.replace("    total = total * 2\n    y = total + 1",
                                            "    t2 = total * 2\n    y = t2 + 1"),
}


def check(original: str, candidate: str, concept, protected=("f",)):
    return check_concept(ast.parse(original), ast.parse(candidate), concept, protected_names=protected)


_NOT_PURE = "not a pure renaming"
_NOT_ONE_DEF = "changes besides renaming one definition"
# why each concept's check rejects another concept's proper instance: (check, instance) -> reason
CROSS_REASON = {
    **{(Concept.IF_ELSE_FLIP, o): "changes besides an if/else flip" for o in Concept},
    **{(Concept.INDEPENDENT_SWAP, o): "changes besides reordering statements" for o in Concept},
    (Concept.DEF_USE_BREAK, Concept.IF_ELSE_FLIP): _NOT_ONE_DEF,
    (Concept.DEF_USE_BREAK, Concept.INDEPENDENT_SWAP): _NOT_ONE_DEF,
    (Concept.DEF_USE_BREAK, Concept.NAME_RANDOM): "renames several variables",
    (Concept.DEF_USE_BREAK, Concept.NAME_SHUFFLE): "renames several variables",
    (Concept.NAME_RANDOM, Concept.IF_ELSE_FLIP): _NOT_PURE,
    (Concept.NAME_RANDOM, Concept.INDEPENDENT_SWAP): _NOT_PURE,
    (Concept.NAME_RANDOM, Concept.DEF_USE_BREAK): _NOT_PURE,
    (Concept.NAME_RANDOM, Concept.NAME_SHUFFLE): "must use fresh names",
    (Concept.NAME_SHUFFLE, Concept.IF_ELSE_FLIP): _NOT_PURE,
    (Concept.NAME_SHUFFLE, Concept.INDEPENDENT_SWAP): _NOT_PURE,
    (Concept.NAME_SHUFFLE, Concept.DEF_USE_BREAK): _NOT_PURE,
    (Concept.NAME_SHUFFLE, Concept.NAME_RANDOM): "must reuse the original's own variable names",
}

UNCHANGED_REASON = {
    Concept.NAME_RANDOM: "no variable was renamed",
    Concept.NAME_SHUFFLE: "no variable was renamed",
    Concept.IF_ELSE_FLIP: "no if/else was flipped",
    Concept.INDEPENDENT_SWAP: "no statements were reordered",
    Concept.DEF_USE_BREAK: "no definition was renamed",
}


@pytest.mark.parametrize("concept", list(Concept))
def test_each_proper_instance_passes_its_own_check_only(concept):
    assert check(ORIGINAL, PROPER[concept], concept) is None
    for other in Concept:
        if other is not concept:
            reason = check(ORIGINAL, PROPER[other], concept)
            assert reason is not None and CROSS_REASON[concept, other] in reason, (other, concept, reason)


@pytest.mark.parametrize("concept", list(Concept))
def test_unchanged_program_is_rejected(concept):
    assert UNCHANGED_REASON[concept] in check(ORIGINAL, ORIGINAL, concept)


# ---- renames ---------------------------------------------------------------------------------------

def test_rename_must_be_consistent():
    half = ORIGINAL.replace("total = 0", "acc = 0")
    reason = check(ORIGINAL, half, Concept.NAME_RANDOM)
    assert "inconsistently" in reason


def test_rename_must_not_merge_two_variables():
    merged = ORIGINAL.replace("count", "y")
    assert "both renamed to 'y'" in check(ORIGINAL, merged, Concept.NAME_SHUFFLE)


def test_rename_of_protected_entry_point_and_builtins_is_rejected():
    assert "protected" in check(ORIGINAL, ORIGINAL.replace("def f(", "def g("), Concept.NAME_RANDOM)
    assert "builtin" in check(ORIGINAL, ORIGINAL.replace("len(", "size_q("), Concept.NAME_RANDOM)


def test_rename_must_not_change_anything_else():
    assert "not a pure renaming" in check(ORIGINAL, ORIGINAL.replace("total", "acc").replace("2", "3"),
                                          Concept.NAME_RANDOM)


def test_rename_that_captures_a_variable_of_another_scope_is_rejected():
    original = "k = 1\ndef f(a):\n    b = a + 1\n    return b + k\n"
    captured = "k = 1\ndef f(a):\n    k = a + 1\n    return k + k\n"
    assert "now refers to a variable of another scope" in check(original, captured, Concept.NAME_SHUFFLE)


def test_same_name_in_two_scopes_may_be_renamed_differently():
    original = "def f(a):\n    i = a\n    return i\n\ndef g(a):\n    i = a * 2\n    return i\n"
    renamed = "def f(a):\n    p1 = a\n    return p1\n\ndef g(a):\n    q2 = a * 2\n    return q2\n"
    assert check(original, renamed, Concept.NAME_RANDOM, protected=("f", "g")) is None


def test_parameter_rename_with_keyword_and_docstring():
    original = 'def f(width):\n    """Scale width by two."""\n    return width * 2\n\nr = f(width=3)\n'
    renamed = 'def f(w_x):\n    """Scale w_x by two."""\n    return w_x * 2\n\nr = f(w_x=3)\n'
    assert check(original, renamed, Concept.NAME_RANDOM) is None
    bad_doc = renamed.replace("Scale w_x", "Double w_x")
    assert "docstring" in check(original, bad_doc, Concept.NAME_RANDOM)


def test_random_needs_fresh_names_and_shuffle_needs_old_ones():
    original = "def f(a):\n    b = a\n    return b\n\ndef g(c):\n    return c\n"
    borrowed = original.replace("b = a\n    return b", "c = a\n    return c")  # g's parameter name, other scope
    assert "fresh" in check(original, borrowed, Concept.NAME_RANDOM, protected=("f", "g"))
    assert check(original, borrowed, Concept.NAME_SHUFFLE, protected=("f", "g")) is None
    reused = ORIGINAL.replace("count", "len_")  # fresh name: fine for random, not for shuffle
    assert check(ORIGINAL, reused, Concept.NAME_RANDOM) is None
    assert "are new" in check(ORIGINAL, reused, Concept.NAME_SHUFFLE)


# ---- if/else flip -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cond, negated", [
    ("a > b", "a <= b"), ("a == b", "a != b"), ("a in b", "a not in b"), ("a is None", "a is not None"),
    ("a", "not a"), ("not a", "a"), ("a and b > 1", "not a or b <= 1"), ("a < b", "not (a < b)"),
])
def test_recognised_negations(cond, negated):
    assert is_negation(ast.parse(cond, mode="eval").body, ast.parse(negated, mode="eval").body)


@pytest.mark.parametrize("cond, other", [("a > b", "a < b"), ("a > b", "b > a"), ("a and b", "not a and not b"),
                                         ("a", "a")])
def test_non_negations(cond, other):
    assert not is_negation(ast.parse(cond, mode="eval").body, ast.parse(other, mode="eval").body)


def test_flip_needs_negated_condition_and_swapped_branches():
    swapped_only = ORIGINAL.replace("total += x\n        else:\n            total -= 1",
                                    "total -= 1\n        else:\n            total += x")
    assert "Add became Sub" in check(ORIGINAL, swapped_only, Concept.IF_ELSE_FLIP)
    negated_only = ORIGINAL.replace("if x > k:", "if x <= k:")
    assert "Gt became LtE" in check(ORIGINAL, negated_only, Concept.IF_ELSE_FLIP)


def test_flip_of_conditional_expression_and_of_two_ifs():
    original = ("def f(a):\n    b = 1 if a else 2\n    if a:\n        c = 1\n    else:\n        c = 2\n"
                "    return b + c\n")
    one = original.replace("1 if a else 2", "2 if not a else 1")
    assert check(original, one, Concept.IF_ELSE_FLIP) is None
    two = one.replace(
        "if a:\n        c = 1\n    else:\n        c = 2", "if not a:\n        c = 2\n    else:\n        c = 1"
    )
    assert "expected exactly one" in check(original, two, Concept.IF_ELSE_FLIP)


# ---- independent swap -----------------------------------------------------------------------------

def test_swap_of_dependent_statements_is_rejected():
    original = "def f(a):\n    b = a + 1\n    c = b * 2\n    return c\n"
    swapped = "def f(a):\n    c = b * 2\n    b = a + 1\n    return c\n"
    assert "dependent" in check(original, swapped, Concept.INDEPENDENT_SWAP)


def test_swap_of_mutation_io_and_return_is_rejected():
    original = "def f(a):\n    a.append(1)\n    n = len(a)\n    print(1)\n    print(2)\n    return n\n"
    mutation = original.replace("    a.append(1)\n    n = len(a)\n", "    n = len(a)\n    a.append(1)\n")
    assert "dependent" in check(original, mutation, Concept.INDEPENDENT_SWAP)
    io = original.replace("    print(1)\n    print(2)\n", "    print(2)\n    print(1)\n")
    assert "I/O" in check(original, io, Concept.INDEPENDENT_SWAP)
    ret = original.replace("    print(2)\n    return n\n", "    return n\n    print(2)\n")
    assert "return" in check(original, ret, Concept.INDEPENDENT_SWAP)


def test_swap_of_an_inert_assignment_across_an_early_return():
    original = ("def f(a):\n    if not a:\n        return 0\n    acc = []\n    for v in a:\n        acc.append(v)\n"
                "    return len(acc)\n")
    moved = original.replace(
        "    if not a:\n        return 0\n    acc = []\n", "    acc = []\n    if not a:\n        return 0\n"
    )
    assert check(original, moved, Concept.INDEPENDENT_SWAP) is None
    for empty, verdict in (("list()", None), ("make()", "control dependence")):  # make() may act
        calls = original.replace("acc = []", f"acc = {empty}")
        moved_call = moved.replace("acc = []", f"acc = {empty}")
        result = check(calls, moved_call, Concept.INDEPENDENT_SWAP)
        assert result is None if verdict is None else verdict in result, (empty, result)
    shadowed = "list = print\n" + original.replace("acc = []", "acc = list()")
    moved_shadowed = "list = print\n" + moved.replace("acc = []", "acc = list()")
    assert "control dependence" in check(shadowed, moved_shadowed, Concept.INDEPENDENT_SWAP)
    loop = "def f(a):\n    for v in a:\n        if v:\n            break\n        y = 1\n    return 0\n"
    moved_loop = loop.replace(
        "        if v:\n            break\n        y = 1\n", "        y = 1\n        if v:\n            break\n"
    )
    assert "break" in check(loop, moved_loop, Concept.INDEPENDENT_SWAP)


def test_swap_with_pure_methods_and_in_two_blocks():
    original = ("def f(s, t):\n    a = s.split()\n    b = s.strip()\n    c = t.lower()\n    d = t.upper()\n"
                "    return a, b, c, d\n")
    one = original.replace("    a = s.split()\n    b = s.strip()\n", "    b = s.strip()\n    a = s.split()\n")
    assert check(original, one, Concept.INDEPENDENT_SWAP) is None
    original2 = ("def f(s):\n    if s:\n        a = 1\n        b = 2\n    else:\n        a = 3\n        b = 4\n"
                 "    return a + b\n")
    two = original2.replace("a = 1\n        b = 2", "b = 2\n        a = 1").replace(
        "a = 3\n        b = 4", "b = 4\n        a = 3")
    assert "2 blocks" in check(original2, two, Concept.INDEPENDENT_SWAP)


def test_swap_of_non_neighbours_is_checked_against_every_statement_between():
    original = "def f(a, b):\n    x = a + 1\n    y = b * 2\n    z = 3\n    return x, y, z\n"
    far = "def f(a, b):\n    z = 3\n    y = b * 2\n    x = a + 1\n    return x, y, z\n"
    assert check(original, far, Concept.INDEPENDENT_SWAP) is None
    middle_reads = original.replace("y = b * 2", "y = x * 2")
    assert "dependent" in check(middle_reads, far.replace("y = b * 2", "y = x * 2"), Concept.INDEPENDENT_SWAP)


def test_swap_of_exclusive_equality_guards():
    original = "def f(n):\n    if n == 0:\n        return 0\n    if n == 1:\n        return 1\n    return n\n"
    swapped = "def f(n):\n    if n == 1:\n        return 1\n    if n == 0:\n        return 0\n    return n\n"
    assert check(original, swapped, Concept.INDEPENDENT_SWAP) is None
    for a, b in (("n == 0", "n < 1"), ("n == 0", "m == 1"), ("n == 0", "n == '1'")):
        before = original.replace("n == 0", a).replace("n == 1", b)
        after = swapped.replace("n == 0", a).replace("n == 1", b)
        assert "return" in check(before, after, Concept.INDEPENDENT_SWAP), (a, b)


def test_swap_of_a_reference_copy_with_a_mutation():
    original = "def f(xs):\n    ys = xs\n    xs[0] = 9\n    return ys\n"
    swapped = "def f(xs):\n    xs[0] = 9\n    ys = xs\n    return ys\n"
    assert check(original, swapped, Concept.INDEPENDENT_SWAP) is None  # ys names the same list either way
    for other in ("xs = [9]", "ys[0] = 9"):  # rebinding xs, or touching ys, does depend on the copy
        before, after = original.replace("xs[0] = 9", other), swapped.replace("xs[0] = 9", other)
        assert "dependent" in check(before, after, Concept.INDEPENDENT_SWAP), other
    reads = original.replace("ys = xs", "ys = xs[0]")  # reads what is inside the list: not a copy
    assert "dependent" in check(reads, swapped.replace("ys = xs", "ys = xs[0]"), Concept.INDEPENDENT_SWAP)


def test_swap_of_arithmetic_that_cannot_fail_across_an_early_return():
    template = "def f(a, n):\n    i, j = 0, len(n)\n    k = 1\n    if a:\n        return 0\n    {}\n    return x\n"
    for statement, verdict in (
        ("x = 22 / 7", None), ("x = 10 ** 9 + 7", None), ("x, y = 1, 2", None),
        ("x = (i + j) // 2", None), ("x = k * 3 - j", None),  # locals that only ever hold ints
        ("x = 1 // 0", "control dependence"), ("x = a + 1", "control dependence"),  # may raise
        ("x = i // j", "control dependence"), ("x = n * 2", "control dependence"),
        ("x, y = n", "control dependence"),
    ):
        before = template.format(statement)
        after = before.replace(
            f"    if a:\n        return 0\n    {statement}\n", f"    {statement}\n    if a:\n        return 0\n"
        )
        result = check(before, after, Concept.INDEPENDENT_SWAP)
        assert result is None if verdict is None else verdict in result, (statement, result)
    # a name is int-only when every binding in the function makes it one
    rebound = template.format("x = k + 1").replace("    return x\n", "    k = n\n    return x\n")
    moved = rebound.replace(
        "    if a:\n        return 0\n    x = k + 1\n", "    x = k + 1\n    if a:\n        return 0\n"
    )
    assert "control dependence" in check(rebound, moved, Concept.INDEPENDENT_SWAP)


# ---- def-use break --------------------------------------------------------------------------------

def test_def_use_must_rename_every_use_the_definition_reaches():
    partial = ORIGINAL.replace("    total = total * 2\n", "    t2 = total * 2\n")  # y = total + 1 left behind
    assert "kept the old name" in check(ORIGINAL, partial, Concept.DEF_USE_BREAK)


def test_def_use_rejects_uses_reached_by_two_definitions():
    original = "def f(a):\n    x = 0\n    if a:\n        x = 1\n    return x\n"
    renamed = "def f(a):\n    x = 0\n    if a:\n        x_q = 1\n    return x_q\n"
    assert "also reached" in check(original, renamed, Concept.DEF_USE_BREAK)


def test_def_use_loop_back_edge_is_seen():
    original = "def f(n):\n    x = 0\n    for i in range(n):\n        y = x\n        x = i\n    return x\n"
    # the second definition reaches `y = x` around the loop and `return x`, each together with the first
    renamed = "def f(n):\n    x = 0\n    for i in range(n):\n        y = x\n        x_q = i\n    return x_q\n"
    assert "use of 'x' reached by the renamed definition kept the old name" in check(
        original, renamed, Concept.DEF_USE_BREAK)


def test_def_use_follows_augmented_assignment_chains():
    original = "def f(a):\n    s = a\n    s = s * 2\n    s += 1\n    return s\n"
    good = "def f(a):\n    s = a\n    s_q = s * 2\n    s_q += 1\n    return s_q\n"
    assert check(original, good, Concept.DEF_USE_BREAK, protected=("f",)) is None


def test_def_use_needs_a_fresh_name_a_remaining_definition_and_a_use():
    original = "def f(a):\n    s = a\n    s = s * 2\n    return s\n"
    assert "fresh" in check(original, original.replace("s = s * 2\n    return s", "a = s * 2\n    return a"),
                            Concept.DEF_USE_BREAK)
    assert "expected exactly one" in check(original, original.replace("s", "z_q"), Concept.DEF_USE_BREAK)
    single = "def f(a):\n    s = a\n    s += 1\n    return s\n"
    assert "every definition" in check(single, single.replace("s", "z_q"), Concept.DEF_USE_BREAK)
    dead = "def f(a):\n    s = a\n    s = 2\n    return a\n"
    assert "reaches no use" in check(dead, dead.replace("s = 2", "s_q = 2"), Concept.DEF_USE_BREAK)


def test_def_use_rejects_variables_captured_by_nested_functions():
    original = "def f(a):\n    s = a\n    s = s + 1\n    g = lambda: s\n    return g()\n"
    renamed = "def f(a):\n    s = a\n    s_q = s + 1\n    g = lambda: s_q\n    return g()\n"
    assert "nested" in check(original, renamed, Concept.DEF_USE_BREAK)


# ---- spans ----------------------------------------------------------------------------------------

def test_span_check():
    original = "a = 1\nb = a\n"
    code = "zz = 1\nb = zz\n"
    assert check_spans(original, code, [(0, 2), (11, 13)]) is None
    assert "outside the program" in check_spans(original, code, [(0, 2), (11, 99)])
    assert "overlaps" in check_spans(original, code, [(11, 13), (0, 2)])
    assert "differs from the original" in check_spans(original, code, [(0, 2)])
    assert "no changed span" in check_spans(original, code, [])


def test_def_use_counts_parameters_as_the_first_definition():
    original = "def f(xs):\n    xs = sorted(xs)\n    return xs[0]\n"
    broken = "def f(xs):\n    ys_q = sorted(xs)\n    return ys_q[0]\n"
    assert check(original, broken, Concept.DEF_USE_BREAK) is None
    # renaming the parameter's own use too would read an undefined name
    wrong = "def f(xs):\n    ys_q = sorted(ys_q)\n    return ys_q[0]\n"
    assert "also reached by a definition that kept the old name" in check(original, wrong, Concept.DEF_USE_BREAK)


def test_def_use_in_unreachable_code_is_named():
    original = "def f(t):\n    t = t + 1\n    return t\n    t = t * 2\n    return t\n"
    renamed = "def f(t):\n    t = t + 1\n    return t\n    t_q = t * 2\n    return t_q\n"
    assert "unreachable" in check(original, renamed, Concept.DEF_USE_BREAK)
