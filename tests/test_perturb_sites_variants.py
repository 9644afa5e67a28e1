"""Several sites at once (``sites=K``) and several counterfactuals per (problem, concept) (``variants=N``):
the perturbations, their concept checks, the engine's rows."""

from __future__ import annotations

import ast
import json
import textwrap

import pytest

from procure_trl.concepts import Concept
from procure_trl.perturb.engine import GenerationConfig, generate_counterfactuals
from procure_trl.perturb.records import CounterfactualRecord
from procure_trl.perturbations import perturb
from procure_trl.problems import Problem
from procure_trl.validation import check_concept

SOURCE = textwrap.dedent("""
    def f(xs, k):
        total = [k]
        count = [0]
        out = []
        if k > 1:
            total = [k, k]
        else:
            total = [1]
        seen = [xs]
        best = [k]
        label = 'big' if len(xs) > 3 else 'small'
        total = total + [1]
        count = count + [2]
        return total, count, out, seen, best, label
    """).lstrip()
DRIVER = "[f([1, 2], 0), f([1, 2, 3, 4], 5), f([], 2)]"


def _run(source: str):
    namespace: dict = {}
    exec(compile(source, "<sites>", "exec"), namespace)
    return repr(eval(DRIVER, namespace))


MULTI = (Concept.IF_ELSE_FLIP, Concept.INDEPENDENT_SWAP, Concept.DEF_USE_BREAK)


@pytest.mark.parametrize("concept", MULTI, ids=lambda c: c.value)
def test_two_sites_change_two_places_and_keep_behaviour(concept):
    expected = _run(SOURCE)
    for seed in range(4):
        result = perturb(SOURCE, concept, seed, sites=2)
        assert result.applied, result.reason
        assert result.sites == 2
        assert _run(result.code) == expected, result.code
        original, candidate = ast.parse(SOURCE), ast.parse(result.code)
        assert check_concept(original, candidate, concept, sites=2) is None
        if concept is not Concept.INDEPENDENT_SWAP:  # (one swap site accepts any reordering of one block)
            one = check_concept(original, candidate, concept, sites=1)  # two changes are not one
            assert one is not None and ("2" in one or "several" in one), one


@pytest.mark.parametrize("concept", MULTI, ids=lambda c: c.value)
def test_more_sites_than_the_program_has_is_not_applicable(concept):
    result = perturb(SOURCE, concept, 0, sites=50)
    assert not result.applied and "50 were asked for" in result.reason


def test_one_change_does_not_pass_for_two():
    single = perturb(SOURCE, Concept.IF_ELSE_FLIP, 0)
    assert check_concept(ast.parse(SOURCE), ast.parse(single.code), Concept.IF_ELSE_FLIP, sites=2) is not None
    swap = perturb(SOURCE, Concept.INDEPENDENT_SWAP, 0)
    reason = check_concept(ast.parse(SOURCE), ast.parse(swap.code), Concept.INDEPENDENT_SWAP, sites=2)
    assert reason is not None and "move 4" in reason


def test_swapped_pairs_never_nest():
    # the only pairs: a/b (or a or b with the loop) outside, c/d inside the loop. Swapping a/b and c/d
    # together would reorder a block whose loop also changed inside: no longer "the same statements"
    source = textwrap.dedent("""
        def f(xs):
            a = [1]
            b = [2]
            for x in xs:
                c = [x]
                d = [x, x]
            return a, b
        """).lstrip()
    assert perturb(source, Concept.INDEPENDENT_SWAP, 0).applied
    for seed in range(4):
        result = perturb(source, Concept.INDEPENDENT_SWAP, seed, sites=2)
        assert not result.applied and "only 1 non-overlapping pair" in result.reason


def _problem(task_id: str, source: str) -> Problem:
    head, body = source.split("\n", 1)
    return Problem(task_id, head + "\n", body, f"assert repr({DRIVER}) == {_run(source)!r}\n", "f")


def test_engine_variants_are_distinct_validated_and_numbered():
    problems = [_problem("T/0", SOURCE)]
    config = GenerationConfig(concepts=[Concept.NAME_RANDOM, Concept.IF_ELSE_FLIP], variants=3, num_workers=1,
                              progress=False)
    records = generate_counterfactuals(problems, config)
    by_concept: dict = {}
    for record in records:
        by_concept.setdefault(record.concept, []).append(record)
    names = by_concept[Concept.NAME_RANDOM]
    assert [r.variant for r in names] == [0, 1, 2] and all(r.status == "valid" for r in names)
    assert len({r.code for r in names}) == 3 and all(r.sites >= 1 for r in names)
    flips = by_concept[Concept.IF_ELSE_FLIP]  # only two if/else sites: two distinct variants
    assert [r.variant for r in flips] == [0, 1] and len({r.code for r in flips}) == 2
    assert all(r.status == "valid" and r.sites == 1 for r in flips)
    line = json.loads(names[1].to_json())
    assert line["variant"] == 1 and CounterfactualRecord.from_dict(line).key == ("T/0", "name_random", 1)


def test_engine_default_rows_keep_their_seed_and_record_sites():
    problems = [_problem("T/0", SOURCE)]
    one = generate_counterfactuals(problems, GenerationConfig(concepts=[Concept.IF_ELSE_FLIP], num_workers=1,
                                                              progress=False))
    assert len(one) == 1 and one[0].variant is None and one[0].sites == 1
    assert "variant" not in json.loads(one[0].to_json())
    three = generate_counterfactuals(problems, GenerationConfig(concepts=[Concept.IF_ELSE_FLIP], variants=3,
                                                                num_workers=1, progress=False))
    assert three[0].code == one[0].code  # variant 0 is the one-variant row
    two = generate_counterfactuals(problems, GenerationConfig(concepts=[Concept.DEF_USE_BREAK], sites=2,
                                                              num_workers=1, progress=False))
    assert two[0].status == "valid" and two[0].sites == 2


def test_bad_counts_are_refused():
    from procure_trl.errors import UserError

    with pytest.raises(UserError, match="--variants"):
        GenerationConfig(variants=0)
    with pytest.raises(UserError, match="--sites"):
        GenerationConfig(sites=0)
    with pytest.raises(ValueError, match="'sites' must be a non-negative integer"):
        CounterfactualRecord.from_dict({"task_id": "t", "concept": "name_random", "status": "not_applicable",
                                        "original": "x = 1\n", "sites": "two"})
