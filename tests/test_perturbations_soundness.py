"""Soundness on tricky programs: every perturbation that applies must not change behaviour.

Each case is a program plus a driver expression. For every concept and several seeds we perturb the
program, execute original and perturbed with the same driver, and compare what the driver returns (or
the exception class it raises) and what the program prints. Some cases also pin down *what* must not
happen (e.g. no renaming next to ``eval``), so the suite fails if a rule is dropped.
"""

from __future__ import annotations

import contextlib
import io
import textwrap

import pytest

from procure_trl.concepts import Concept
from procure_trl.perturbations import perturb

SEEDS = range(4)


def _run(source: str, driver: str):
    namespace: dict = {"__name__": "tricky"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(source, "<tricky>", "exec"), namespace)
            value = eval(driver, namespace)
            outcome = ("ok", repr(value))
        except Exception as error:  # the class of the error is behaviour too
            outcome = ("raised", type(error).__name__)
    return outcome, out.getvalue()


# (id, source, driver)
CASES = [
    ("walrus", """
        def f(xs):
            total = 0
            if (n := len(xs)) > 2:
                total = n * 2
            else:
                total = n
            ys = [y for x in xs if (y := x * 2) > 2]
            return total, ys, y
        """, "f([1, 2, 3])"),
    ("walrus_in_comprehension_binds_outer", """
        def f(xs):
            last = None
            found = [last := x for x in xs if x % 2]
            return found, last
        """, "(f([1, 2, 3, 4, 5]), f([2, 4]))"),
    ("walrus_in_short_circuit", """
        def f(a, b):
            hit = 'none'
            ok = a or (hit := b)
            return ok, hit
        """, "(f(1, 2), f(0, 3))"),
    ("nonlocal", """
        def counter(start):
            count = start
            step = 1
            def bump():
                nonlocal count
                count += step
                return count
            first = bump()
            second = bump()
            return first, second, count
        """, "counter(10)"),
    ("global", """
        hits = 0
        def f(x):
            global hits
            hits += 1
            y = x * 2
            z = y + 1
            return z
        """, "(f(1), f(2), hits)"),
    ("comprehension_scope", """
        def f(xs):
            x = 'outer'
            ys = [x for x in xs]
            zs = {k: v for k, v in zip(xs, ys)}
            return x, ys, zs
        """, "f([1, 2])"),
    ("comprehension_first_iterable_outer", """
        def f(n):
            i = 5
            return [i for i in range(i)], [j * n for j in range(n)]
        """, "f(3)"),
    ("class_body", """
        class Box:
            size = 3
            doubled = [size * 2] * 2
            def area(self, width):
                height = self.size
                result = width * height
                return result
        def f(w):
            b = Box()
            v = b.area(w)
            return v, Box.doubled, sorted(k for k in vars(Box) if not k.startswith('__'))
        """, "f(4)"),
    ("match", """
        def f(cmd):
            prefix = 'cmd'
            match cmd.split():
                case [action]:
                    result = prefix + ':' + action
                case [action, obj]:
                    result = prefix + ':' + action + ' ' + obj
                case _:
                    result = 'unknown'
            return result
        """, "(f('go'), f('take lamp'), f('a b c'))"),
    ("decorators", """
        calls = []
        def log(fn):
            def wrapper(*args, **kwargs):
                calls.append(fn.__name__)
                return fn(*args, **kwargs)
            return wrapper
        @log
        def f(a, b=2):
            c = a + b
            d = c * 2
            return d
        def g():
            return f(1), f(a=2, b=3), calls
        """, "g()"),
    ("for_else", """
        def find(xs, target):
            idx = -1
            for i, x in enumerate(xs):
                if x == target:
                    idx = i
                    break
            else:
                idx = -2
            return idx
        """, "(find([1, 2, 3], 2), find([1, 2, 3], 9))"),
    ("try_finally", """
        log = []
        def f(x):
            a = 0
            try:
                a = 10 // x
                b = 1
            except ZeroDivisionError:
                b = -1
            finally:
                log.append('done')
            c = a + b
            return c, log[:]
        """, "(f(2), f(0))"),
    ("exception_order_inside_try", """
        def f(xs, d):
            got = 'none'
            try:
                first = xs[0]
                got = 'first'
                value = d['k']
            except (IndexError, KeyError) as e:
                return got, type(e).__name__
            return got, first, value
        """, "(f([], {}), f([1], {}), f([1], {'k': 2}))"),
    ("generator", """
        def gen(n):
            i = 0
            while i < n:
                yield i * i
                i += 1
        def f(n):
            g = gen(n)
            first = next(g)
            rest = list(g)
            return first, rest
        """, "f(4)"),
    ("iterator_consumption", """
        def f(xs):
            it = iter(xs)
            a = list(it)
            b = list(it)
            return a, b
        def g(xs):
            it = iter(xs)
            s = sum(it)
            m = max(xs)
            return s, m
        """, "(f([1, 2]), g([3, 4]))"),
    ("aliasing", """
        def f(xs):
            ys = xs
            n = len(ys)
            xs.append(n)
            m = len(ys)
            return n, m, ys
        """, "f([1, 2])"),
    ("async", """
        import asyncio
        async def twice(x):
            y = x * 2
            await asyncio.sleep(0)
            z = y + 1
            return z if z > 3 else -z
        def f(v):
            return asyncio.run(twice(v))
        """, "(f(1), f(5))"),
    ("eval_locals", """
        def f(a):
            b = a + 1
            c = eval('b * 2')
            d = locals()['c']
            return c, d
        """, "f(3)"),
    ("keyword_arguments", """
        def area(width, height=2):
            result = width * height
            return result
        def helper(n):
            def inner(p, q):
                return p - q
            return inner(n, 1), inner(q=n, p=10)
        """, "(area(height=3, width=4), area(5), helper(4))"),
    ("returned_closure_called_by_keyword", """
        def make(k):
            def add(value, extra=0):
                return value + k + extra
            return add
        """, "make(1)(value=2, extra=3)"),
    ("shadowed_builtins", """
        def f(list, len=None):
            max = 0
            for sum in list:
                if sum > max:
                    max = sum
            return max, len
        """, "f([3, 9, 2])"),
    ("del", """
        def f(x):
            y = x + 1
            z = y * 2
            del y
            try:
                return y
            except NameError:
                return z
        """, "f(1)"),
    ("lambda_defaults", """
        def f(n):
            k = 3
            fs = [lambda x, k=k: x + k + i for i in range(n)]
            return [g(1) for g in fs], sorted([3, 1, 2], key=lambda v: -v)
        """, "f(2)"),
    ("partial_keywords", """
        from functools import partial
        def f(xs):
            sub = partial(lambda x, y: x - y, y=1)
            return [sub(v) for v in xs], sorted(xs, key=lambda v: -v)
        """, "f([3, 1])"),
    ("fstrings", """
        def f(x):
            y = x * 2
            label = f"{y=}"
            other = f"{x!r:>5}|{y:03d}"
            return label, other
        """, "f(4)"),
    ("star_import", """
        from math import *
        def f(x):
            r = sqrt(x)
            s = floor(r)
            return r if s > 1 else s
        """, "(f(16), f(2))"),
    ("super_no_args", """
        class Base:
            def val(self, k):
                return k + 1
        class Child(Base):
            def val(self, k):
                base = super().val(k)
                extra = base * 2
                return extra
        """, "Child().val(3)"),
    ("dunder_class", """
        class A:
            def who(self):
                name = __class__.__name__
                size = len(name)
                return name, size
        """, "A().who()"),
    ("string_annotations", """
        def f(xs: "list[int]") -> "int":
            total: "int" = 0
            for x in xs:
                total += x
            return total
        """, "(f([1, 2, 3]), f.__annotations__)"),
    ("name_mangling", """
        class C:
            def m(self, v):
                __secret = v * 2
                other = __secret + 1
                return other
        """, "C().m(3)"),
    ("nan_and_sets", """
        def f(a, b):
            if a < b:
                r = 'lt'
            else:
                r = 'ge'
            s = 'yes' if a >= b else 'no'
            return r, s
        """, "(f(float('nan'), 1.0), f({1}, {2}), f(1, 2), f(2, 1))"),
    ("conditions", """
        def f(x, xs):
            if x in xs and not x is None or len(xs) > 3:
                a = 1
            else:
                a = 2
            if (x > 0 and
                    x < 10):  # range check
                b = 'small'
            elif x == 0:
                b = 'zero'
            else:
                b = 'other'
            c = 'even' if x % 2 == 0 else 'odd' if x > 0 else 'neg'
            d = (lambda: 1) if x else (lambda: 2)
            return a, b, c, d()
        """, "[f(v, [1, 2, 3]) for v in (-3, 0, 1, 2, 5, 11)]"),
    ("chained_and_identity", """
        def f(x, y):
            if 0 < x < 10:
                a = 'in'
            else:
                a = 'out'
            if y is not None:
                b = y
            else:
                b = 0
            return a, b
        """, "[f(5, None), f(20, 3)]"),
    ("int_ordering_complement", """
        def f(xs):
            n = len(xs)
            i = 0
            count = 0
            while i < n:
                if xs[i] > 0:
                    count += 1
                i += 1
            if n >= 3:
                return count
            else:
                return -count
        """, "(f([1, -2, 3]), f([1]))"),
    ("non_ascii_crlf_tabs", "def f(s):\r\n\tnom = 'é' + s  # café\r\n\tn = len(nom)\r\n\tif n > 2:\r\n\t\tr = nom\r\n"
                            "\telse:\r\n\t\tr = 'ü'\r\n\treturn r, n\r\n",
     "(f('ab'), f(''))"),
    ("trailing_semicolons", """
        def f(a, b):
            i = 0;  j = 0;
            if (a == b):
                i += 1;
                if (i == 1):
                    return True;
            else:
                j = 2;
            k = 3;
            if (a > 100):
                return 2;
            return (i, j, k);
        """, "(f(1, 1), f(1, 2), f(200, 3))"),
    ("semicolons_and_inline", """
        def f(x):
            a = 1; b = 2
            if x: c = a
            else: c = b
            return a, b, c
        """, "(f(0), f(1))"),
    ("redefinitions", """
        def f(s, n):
            s = s.strip()
            t = s.upper()
            t = t + '!'
            out = []
            for i in range(n):
                out.append(t[i % len(t)])
            for i in range(n, 0, -1):
                out.append(str(i))
            x = sum(int(c) for c in out if c.isdigit())
            x = x * 2
            return ''.join(out), x
        """, "f('  ab ', 3)"),
    ("redefinition_in_branches", """
        def f(flag):
            v = 1
            if flag:
                v = 2
            w = v * 10
            v = w + 1
            return v
        """, "(f(True), f(False))"),
    ("parameter_redefined_called_by_keyword", """
        def split_clean(s, sep=','):
            s = s.strip()
            parts = s.split(sep)
            parts = [p.strip() for p in parts]
            return parts
        """, "(split_clean(s=' a, b ', sep=','), split_clean(' x;y', ';'))"),
    ("redefinition_and_exceptions", """
        def f(x):
            v = 0
            try:
                v = int(x)
                w = v * 2
            except ValueError:
                w = v - 1
            return w
        """, "(f('4'), f('x'))"),
    ("redefinition_in_while", """
        def f(n):
            out = []
            while n > 0:
                d = n % 10
                d = d * d
                out.append(d)
                n //= 10
            return out
        """, "f(1234)"),
    ("augmented_use_after_init", """
        def merge(a, b):
            c = []
            for x in a:
                c.append(x)
            c += b
            return c
        """, "merge([1], [2])"),
    ("augmented_loop_variable", """
        def f(xs):
            for i in range(2):
                pass
            for i in range(len(xs)):
                if xs[i] > 1:
                    return i
                i += 1
            return -1
        """, "(f([0, 5]), f([0]))"),
    ("closure_reads_later_write", """
        def f():
            x = 1
            g = lambda: x
            y = g()
            x = 2
            z = g()
            return y, z
        """, "f()"),
    ("module_global_read_through_call", """
        RATE = 1
        def get():
            return RATE
        first = get()
        RATE = 2
        second = get()
        """, "(first, second)"),
    ("dead_code_after_return", """
        def f(text):
            text = text.strip()
            return text
            text = text.upper()
            return text
        """, "f(' a ')"),
    ("loop_carried", """
        def f(n):
            a, b = 0, 1
            for _ in range(n):
                a, b = b, a + b
            return a
        """, "f(10)"),
    ("print_order", """
        def f(x):
            print('start')
            y = x + 1
            print('y', y)
            z = 3
            print('z', z)
            return y + z
        """, "f(1)"),
    ("module_level_names_are_public", """
        import math
        RATE = 2
        scale = 3
        def f(x):
            return x * RATE * scale
        """, "(f(2), RATE, scale)"),
    ("with_statement", """
        import io as _io
        def f(text):
            buf = _io.StringIO(text)
            with buf as handle:
                first = handle.readline()
                rest = handle.read()
            return first, rest
        """, "f('a\\nb\\nc')"),
    ("exclusive_guards", """
        def f(n, xs):
            if n == 0:
                return 'zero'
            if n == 1:
                return 'one'
            if len(xs) == 2:
                return 'pair'
            if len(xs) == 3:
                raise ValueError(n)
            return n
        """, "[f(0, []), f(1, []), f(2, [1, 2]), f(2, []), f(1, [1, 2, 3]), f(0.0, [])]"),
    ("distant_swap_around_an_independent_statement", """
        def f(a, b):
            x = a + 1
            y = b * 2
            z = [a]
            w = y - 1
            return x, y, z, w
        """, "(f(1, 2), f(0, 5))"),
    ("early_return_guard", """
        def f(xs):
            if not xs:
                return 0
            total = 0
            count = len(xs)
            for x in xs:
                total += x
            return total / count
        """, "(f([]), f([1, 2]))"),
    ("builtin_reads_and_mutable_globals", """
        seen = []
        def f(xs):
            top = float('inf')
            xs.append(1)
            n = len(seen)
            xs.append(2)
            return top, n, xs
        """, "(f([]), f(seen), seen)"),
    ("reference_copy_next_to_mutation", """
        g = [1]
        def reset():
            global g
            g = [2]
        def f(xs):
            ys = xs
            xs[0] = 9
            head = xs[0]
            xs[0] = 7
            h = g
            reset()
            return ys, head, h
        """, "(f([0, 1]), f([]), f(5))"),
    ("constant_arithmetic_next_to_a_guard", """
        def f(a, r):
            pi = 22 / 7
            if a >= 360:
                return None
            area = pi * r
            if a < 0:
                return 'negative'
            q = 1 // 0
            return area, q
        """, "[f(400, 1), f(-1, 2), f(10, 1)]"),
    ("unpacked_display_next_to_a_guard", """
        def f(q, w, pair):
            if sum(q) > w:
                return False
            i, j = 0, len(q) - 1
            while i < j:
                i += 1
                j -= 1
            if w < 0:
                return 'neg'
            a, b = pair
            return i, j, a, b
        """, "[f([1, 2, 3], 100, (1, 2)), f([9], 1, ()), f([1], 5, (1,)), f([1], -1, ())]"),
]


@pytest.mark.parametrize("name,source,driver", CASES, ids=[c[0] for c in CASES])
def test_perturbations_preserve_behaviour(name, source, driver):
    source = textwrap.dedent(source) if not source.startswith("def f(s):\r\n") else source
    expected = _run(source, driver)
    for concept in Concept:
        for seed in SEEDS:
            result = perturb(source, concept, seed)
            if not result.applied:
                assert result.reason, f"{concept}: not applicable without a reason"
                continue
            assert result.code != source, f"{concept} seed {seed}: applied but changed nothing"
            got = _run(result.code, driver)
            assert got == expected, (
                f"{concept} (seed {seed}) changed behaviour of {name}:\n{result.code}\n"
                f"expected {expected}\ngot {got}\ndetails {result.details}"
            )


def test_the_tricky_cases_are_actually_perturbed():
    """The behaviour test above is only as strong as what gets applied: most cases must be perturbed."""
    applied = {concept: 0 for concept in Concept}
    for _, source, _driver in CASES:
        source = textwrap.dedent(source) if not source.startswith("def f(s):\r\n") else source
        for concept in Concept:
            applied[concept] += perturb(source, concept, 0).applied
    assert applied[Concept.NAME_RANDOM] >= 25
    assert applied[Concept.NAME_SHUFFLE] >= 15
    assert applied[Concept.IF_ELSE_FLIP] >= 8
    assert applied[Concept.INDEPENDENT_SWAP] >= 8
    assert applied[Concept.DEF_USE_BREAK] >= 4


def _case(name: str) -> str:
    for case_name, source, _ in CASES:
        if case_name == name:
            return textwrap.dedent(source)
    raise KeyError(name)


def test_no_renaming_next_to_eval_or_locals():
    for concept in (Concept.NAME_RANDOM, Concept.NAME_SHUFFLE, Concept.DEF_USE_BREAK):
        result = perturb(_case("eval_locals"), concept, 0)
        assert not result.applied, result.code


def test_public_parameters_and_module_names_keep_their_names():
    source = _case("keyword_arguments")
    for seed in SEEDS:
        code = perturb(source, Concept.NAME_RANDOM, seed).code
        assert "def area(width, height=2):" in code
        # inner() is only called inside helper, but once by keyword: its parameters are public too
        assert "def inner(p, q):" in code
    code = perturb(_case("returned_closure_called_by_keyword"), Concept.NAME_RANDOM, 0)
    assert not code.applied or "def add(value, extra=0):" in code.code
    result = perturb(_case("module_level_names_are_public"), Concept.NAME_RANDOM, 0)
    assert not result.applied


def test_self_documenting_fstring_keeps_the_name():
    result = perturb(_case("fstrings"), Concept.NAME_RANDOM, 0)
    assert result.applied
    assert "{y=}" in result.code  # y is printed by name: renaming it would change the output
    assert all(entry["old"] != "y" for entry in result.details["renames"])


def test_ordering_of_possibly_nan_values_is_not_complemented():
    source = _case("nan_and_sets")
    conditions = set()
    for seed in range(6):
        result = perturb(source, Concept.IF_ELSE_FLIP, seed)
        conditions.add(result.details["negated_condition"])
    assert conditions == {"not (a < b)", "not (a >= b)"}


def test_known_int_ordering_is_complemented():
    result = [perturb(_case("int_ordering_complement"), Concept.IF_ELSE_FLIP, s) for s in range(4)]
    assert {r.details["negated_condition"] for r in result} == {"n < 3"}


def test_iterators_consumed_twice_are_not_swapped():
    for seed in SEEDS:
        result = perturb(_case("iterator_consumption"), Concept.INDEPENDENT_SWAP, seed)
        # only the two function definitions are independent: consuming calls never trade places
        assert result.details["statements"][0].startswith("def "), result.details


def test_try_blocks_and_prints_are_not_reordered():
    for name in ("exception_order_inside_try", "print_order", "aliasing"):
        for seed in SEEDS:
            result = perturb(_case(name), Concept.INDEPENDENT_SWAP, seed)
            if result.applied:
                swapped = result.details["statements"]
                assert not all("print" in s for s in swapped), swapped  # output order is behaviour
                assert "first = xs[0]" not in swapped and "value = d['k']" not in swapped
                assert "xs.append(n)" not in swapped


def _swapped_pairs(name: str) -> set[tuple[str, ...]]:
    """The (first lines of the) statement pairs ``independent_swap`` picks in case ``name`` over 12 seeds."""
    pairs = set()
    for seed in range(12):
        statements = perturb(_case(name), Concept.INDEPENDENT_SWAP, seed).details.get("statements", ())
        pairs.add(tuple(s.splitlines()[0] for s in statements))
    return pairs


def test_refined_effects_allow_these_swaps():
    """Each refinement is used: builtins are not mutable state, ``y = x`` copies a reference, number
    literal arithmetic and ``a, b = 0, len(q) - 1`` cannot raise (so they cross a guard), and names
    unpacked from such a display hold ints (``i += 1`` / ``j -= 1`` commute)."""
    assert ("top = float('inf')", "xs.append(1)") in _swapped_pairs("builtin_reads_and_mutable_globals")
    assert ("ys = xs", "xs[0] = 9") in _swapped_pairs("reference_copy_next_to_mutation")
    assert ("pi = 22 / 7", "if a >= 360:") in _swapped_pairs("constant_arithmetic_next_to_a_guard")
    pairs = _swapped_pairs("unpacked_display_next_to_a_guard")
    assert ("if sum(q) > w:", "i, j = 0, len(q) - 1") not in pairs  # len(q) may raise
    assert ("i += 1", "j -= 1") in pairs


def test_refined_effects_still_refuse_these_swaps():
    forbidden = {
        "builtin_reads_and_mutable_globals": ["n = len(seen)"],  # a global list: xs may be the same list
        "reference_copy_next_to_mutation": ["head = xs[0]", "h = g"],  # reads contents / a global reset() rebinds
        "constant_arithmetic_next_to_a_guard": ["q = 1 // 0"],  # raises: must stay below the guards
        "unpacked_display_next_to_a_guard": ["a, b = pair"],  # unpacking a value may raise
    }
    for name, statements in forbidden.items():
        for pair in _swapped_pairs(name):
            assert not set(statements) & set(pair), (name, pair)


def test_dead_code_is_left_alone():
    for seed in SEEDS:
        result = perturb(_case("dead_code_after_return"), Concept.DEF_USE_BREAK, seed)
        assert result.details["definition_line"] == 3  # not the unreachable redefinition on line 5


def test_augmented_assignments_count_as_uses():
    assert not perturb(_case("augmented_use_after_init"), Concept.DEF_USE_BREAK, 0).applied
    assert not perturb(_case("augmented_loop_variable"), Concept.DEF_USE_BREAK, 0).applied


def test_loop_carried_and_branch_merged_definitions_are_not_split():
    assert not perturb(_case("loop_carried"), Concept.DEF_USE_BREAK, 0).applied
    case = _case("redefinition_in_branches")
    lines = {perturb(case, Concept.DEF_USE_BREAK, s).details.get("definition_line") for s in SEEDS}
    # v = 1 and v = 2 both reach "w = v * 10": neither may be split; only "v = w + 1" (line 7) can
    assert lines == {7}
