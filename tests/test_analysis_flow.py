"""CFG, reaching definitions / def-use chains, value kinds, statement effects and independence."""

from __future__ import annotations

import ast
import json
import textwrap

from procure_trl.analysis import analyze, build_cfg
from procure_trl.analysis.blocks import iter_blocks
from procure_trl.analysis.dataflow import definitely_bound, function_flows, redefinitions
from procure_trl.analysis.effects import EffectAnalyzer, independent
from procure_trl.analysis.program import load_program
from procure_trl.analysis.scopes import ScopeKind, renameable_bindings
from procure_trl.analysis.values import INT, STR, local_value_kinds
from procure_trl.concepts import Concept


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _function(analysis, name):
    return next(s for s in analysis.module.walk() if s.kind is ScopeKind.FUNCTION and s.name == name)


# -- CFG -------------------------------------------------------------------------------------------
def test_cfg_loops_break_continue_and_else():
    tree = ast.parse(_src("""
        def f(xs):
            for x in xs:
                if x:
                    continue
                if x > 3:
                    break
            else:
                y = 1
            return 0
        """))
    cfg = build_cfg(tree.body[0])
    kinds = {n.id: n.kind for n in cfg.nodes}
    head = next(n for n in cfg.nodes if n.kind == "for_next")
    target = next(n for n in cfg.nodes if n.kind == "for_target")
    assert target.id in head.succ  # next item -> bind target -> body
    cont = next(n for n in cfg.nodes if isinstance(n.node, ast.Continue))
    brk = next(n for n in cfg.nodes if isinstance(n.node, ast.Break))
    assert cont.succ == [head.id]
    ret = next(n for n in cfg.nodes if isinstance(n.node, ast.Return))
    else_stmt = next(n for n in cfg.nodes if isinstance(n.node, ast.Assign))
    assert brk.succ == [ret.id]  # break skips the else block
    assert else_stmt.id in head.succ  # loop exhausted -> else
    assert ret.succ == [cfg.exit] and kinds[cfg.entry] == "entry"
    json.dumps(cfg.to_dict())


def test_cfg_try_links_every_step_to_the_handlers():
    tree = ast.parse(_src("""
        def f(s):
            v = 0
            try:
                v = int(s)
                w = v + 1
            except ValueError:
                w = v
            return w
        """))
    cfg = build_cfg(tree.body[0])
    handler = next(n for n in cfg.nodes if n.kind == "handler")
    in_try = [n for n in cfg.nodes if isinstance(n.node, ast.Assign) and n.node.lineno in (4, 5)]
    assert all(handler.id in n.succ for n in in_try)
    before = next(n for n in cfg.nodes if isinstance(n.node, ast.Assign) and n.node.lineno == 2)
    try_node = next(n for n in cfg.nodes if n.kind == "try")
    assert handler.id in try_node.succ  # raising in the first step: the state before it reaches the handler
    assert before.id in try_node.pred


# -- reaching definitions -----------------------------------------------------------------------------
def test_reaching_definitions_and_separable_redefinitions():
    source = _src("""
        def f(n, flag):
            v = 1
            if flag:
                v = 2
            w = v * 10
            v = w + n
            total = 0
            for i in range(n):
                total = total + i
            return v, total
        """)
    analysis = load_program(source)
    flows = {f.name: f for f in redefinitions(analysis, renameable_bindings(analysis, allow_public_parameters=True))}
    v = flows["v"]
    by_line = {d.line: d for d in v.definitions}
    assert {u.line for u in by_line[2].uses} == {5} and {u.line for u in by_line[4].uses} == {5}
    assert not by_line[2].separable and not by_line[4].separable  # both reach "w = v * 10"
    assert by_line[6].separable and {u.line for u in by_line[6].uses} == {10}
    total = {d.line: d for d in flows["total"].definitions}
    assert not total[7].separable and not total[9].separable  # loop-carried
    json.dumps(v.to_dict())


def test_definitely_bound_is_a_must_analysis():
    source = _src("""
        def f(a):
            if a:
                x = 1
            y = 2
            z = x
            del y
            return z
        """)
    analysis = load_program(source)
    fn = _function(analysis, "f")
    bound = definitely_bound(analysis, fn)
    stmts = {s.lineno: s for s in ast.walk(analysis.tree) if isinstance(s, ast.stmt)}
    assert bound[id(stmts[5])] == {"a", "y"}  # x is bound on one path only
    assert bound[id(stmts[7])] == {"a", "z"}  # y deleted


def test_flows_refuse_closures_and_finally():
    source = _src("""
        def f(xs):
            k = 1
            k = 2
            g = lambda: k
            m = 3
            m = 4
            try:
                pass
            finally:
                m = 5
            return g, m
        """)
    analysis = load_program(source)
    fn = _function(analysis, "f")
    flows = {f.name: f for f in function_flows(analysis, fn, [fn.bindings["k"], fn.bindings["m"]])}
    assert not flows["k"].eligible and "later" in flows["k"].why_not
    assert not flows["m"].eligible and "finally" in flows["m"].why_not


# -- value kinds -----------------------------------------------------------------------------------------
def test_value_kinds_are_a_sound_fixpoint():
    tree = ast.parse(_src("""
        def f(xs, p):
            i = 0
            n = len(xs)
            s = ''
            t = s + 'x'
            u = 0
            u = p
            j = 0
            j += 0.5
            for k in range(n):
                i += k
            return i
        """))
    kinds = local_value_kinds(tree.body[0])
    assert kinds == {"i": INT, "n": INT, "s": STR, "t": STR, "k": INT}
    assert local_value_kinds(tree.body[0], frozenset({"len"})).get("n") is None  # len is shadowed


# -- effects and independence -------------------------------------------------------------------------
def _pairs(source: str) -> dict[tuple[int, int], tuple[bool, str]]:
    analysis = load_program(source)
    analyzer = EffectAnalyzer(analysis, analysis.shadowed_builtins)
    out = {}
    for block in iter_blocks(analysis):
        effects = [analyzer.effects(s, block.scope) for s in block.statements]
        for i in range(len(effects) - 1):
            key = (block.statements[i].lineno, block.statements[i + 1].lineno)
            out[key] = independent(effects[i], effects[i + 1], inside_try=block.inside_try)
    return out


def test_independence_decisions():
    pairs = _pairs(_src("""
        def f(xs, ys):
            res = []
            count = 0
            n = len(xs)
            m = len(ys)
            res.append(n)
            count += 1
            print(n)
            print(m)
            if not xs:
                return 0
            seen = set()
            a = sorted(xs)
            b = sorted(ys)
            return res, count, seen, a, b
        """))
    assert pairs[(2, 3)] == (True, "")  # literal initialisations
    assert pairs[(4, 5)] == (False, "both may raise")  # len() of unknown values
    assert pairs[(6, 7)] == (True, "")  # a mutation next to int arithmetic on a bound int
    assert pairs[(8, 9)] == (False, "both have side effects")  # output order
    assert pairs[(10, 12)] == (True, "")  # an early return next to a silent, safe binding
    assert pairs[(13, 14)][0] is False  # sorted() consumes possible iterators
    assert pairs[(5, 6)] == (False, "side effect on a value the other may read")  # ys may alias res
    assert pairs[(3, 4)] == (True, "")
    assert _pairs("def g(a):\n    b = a\n    c = b\n    return c\n")[(2, 3)] == (False, "data dependency")


def test_try_blocks_and_module_level():
    pairs = _pairs(_src("""
        import math
        import re
        def f(d):
            try:
                a = d['x']
                b = 0
            except KeyError:
                return b
            return a
        """))
    assert pairs[(1, 2)] == (True, "")
    assert pairs[(5, 6)] == (False, "may raise inside a try block")


# -- facts ---------------------------------------------------------------------------------------------
def test_analyze_facts_are_json_and_per_concept():
    source = _src("""
        def f(s, k):
            s = s.strip()
            res = []
            total = 0
            for ch in s:
                if ch.isdigit():
                    total += int(ch)
                else:
                    res.append(ch)
            return res if total > k else total
        """)
    facts = analyze(source)
    json.dumps(facts.to_dict())
    assert [site["kind"] for site in facts.if_else] == ["if", "expression"]
    assert facts.if_else[0]["condition"] == "ch.isdigit()"
    assert any(pair["statements"] == ["res = []", "total = 0"] for pair in facts.independent_pairs)
    assert facts.renameable_names == {"f": ["ch", "res", "total"]}
    assert {"f", "k", "s"} <= set(facts.protected_names)
    redefined = {r["variable"]: r for r in facts.redefinitions}
    assert [d["separable"] for d in redefined["s"]["definitions"]] == [False, True]
    for concept in Concept:
        summary = facts.for_concept(concept)
        assert summary["concept"] == concept.value
        json.dumps(summary)
    assert facts.for_concept("if_else_flip")["if_else"] == facts.if_else


def test_may_raise_is_proved_not_assumed():
    source = _src("""
        def f(xs, k: int) -> list:
            i = 0
            i += 1
            j = i * 2 + k
            inf = float('-inf')
            bad = int('x1')
            row = [0] * 26
            seen = set()
            m = i // 2
            d = i // j
            n = len(xs)
            return xs
        """)
    analysis = load_program(source)
    analyzer = EffectAnalyzer(analysis, analysis.shadowed_builtins)
    fn = _function(analysis, "f")
    raises = {s.lineno: analyzer.effects(s, fn).may_raise for s in fn.node.body}
    assert raises == {
        2: False, 3: False,  # literal, += on a bound int
        4: True,  # k is a parameter of unknown type
        5: False, 6: True,  # float('-inf') is fine, int('x1') is not
        7: False, 8: False, 9: False,  # [0] * 26, set(), // by a non-zero constant
        10: True,  # // by a variable may divide by zero
        11: True, 12: True,
    }
    module_def = EffectAnalyzer(analysis, analysis.shadowed_builtins).effects(analysis.tree.body[0], analysis.module)
    assert not module_def.may_raise  # annotations int/list are unshadowed builtins


# -- swap candidates on long blocks ----------------------------------------------------------------------
def _reference_pairs(analysis) -> set[tuple[int, int]]:
    """The swap rule checked pair by pair on every statement between (the cubic definition)."""
    from procure_trl.analysis.swaps import _live_statements, _swappable_shape, exclusive_guards

    analyzer = EffectAnalyzer(analysis, analysis.shadowed_builtins)
    found = set()
    for block in iter_blocks(analysis):
        live = _live_statements(block)
        stmts = block.statements[:live]
        effects = [analyzer.effects(s, block.scope) for s in stmts]

        def commute(i, j, effects=effects, stmts=stmts, block=block):  # this iteration's block (called within it)
            ok, _ = independent(effects[i], effects[j], inside_try=block.inside_try)
            return ok or exclusive_guards(stmts[i], stmts[j], analysis.shadowed_builtins)

        for i in range(live):
            for j in range(i + 1, live):
                if (commute(i, j) and all(commute(i, k) and commute(k, j) for k in range(i + 1, j))
                        and _swappable_shape(stmts[i]) and _swappable_shape(stmts[j])
                        and ast.dump(stmts[i]) != ast.dump(stmts[j])):
                    found.add((stmts[i].lineno, stmts[j].lineno))
    return found


def test_swap_candidates_match_the_pairwise_rule():
    import random

    from procure_trl.analysis.swaps import independent_pairs

    rng = random.Random(7)
    shapes = ["v{a} = {k}", "v{a} = v{b} + 1", "out.append(v{b})", "print(v{a})", "v{a} += {k}", "w = 0", "w = 0"]
    for _ in range(25):
        lines = [f"    v{i} = {i}" for i in range(4)]
        lines += ["    " + rng.choice(shapes).format(a=rng.randrange(4), b=rng.randrange(4), k=rng.randrange(9))
                  for _ in range(rng.randrange(2, 20))]
        source = "def f(out):\n" + "\n".join(lines) + "\n    return v0\n"
        analysis = load_program(source)
        got = {(c.first.lineno, c.second.lineno) for c in independent_pairs(analysis)}
        assert got == _reference_pairs(analysis), source


def test_swap_analysis_is_fast_on_a_long_straight_line_function():
    import time

    from procure_trl.perturbations import independent_swap

    # alternating independent constants and dependent chains: many candidates, many conflicts
    body = [f"    v{i} = {i}" if i % 2 == 0 else f"    v{i} = v{i - 1} + 1" for i in range(2000)]
    source = "def f():\n" + "\n".join(body) + "\n    return v1999\n"
    start = time.perf_counter()
    result = independent_swap(source, seed=3)
    assert time.perf_counter() - start < 5
    assert result.code is not None and result.code != source
