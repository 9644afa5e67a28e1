"""Prompt construction and answer parsing (pure functions)."""

from __future__ import annotations

import json

import pytest

from procure_trl.concepts import Concept
from procure_trl.perturb.llm.prompts import (
    _EXAMPLES,
    NOT_APPLICABLE_MARKER,
    build_messages,
    build_repair_message,
    extract_code,
    render_facts,
    system_prompt,
)

PROGRAM = "def f(a):\n    if a:\n        return 1\n    else:\n        return 2\n"
FACTS = {"ifs": [{"line": 2, "condition": "a", "has_else": True}]}


def fake_facts(program, concept, protected=()):
    return {"concept": concept.value, "chars": len(program), "protected": list(protected)}


@pytest.mark.parametrize("concept", list(Concept))
def test_one_shot_structure_with_rules_example_and_facts(concept):
    messages = build_messages(PROGRAM, concept, FACTS, entry_point="f", facts_fn=fake_facts)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert f"Concept: {concept.value}" in messages[0]["content"]
    example = _EXAMPLES[concept]
    assert example.program.rstrip() in messages[1]["content"]
    # The example's facts come from the same facts function, so they look like the real ones.
    example_entry = example.program.split("def ", 1)[1].split("(", 1)[0]
    example_facts = fake_facts(example.program, concept, (example_entry,))
    assert render_facts(example_facts) in messages[1]["content"]
    assert example.answer.rstrip() in messages[2]["content"]
    task = messages[3]["content"]
    assert PROGRAM.rstrip() in task and "`f`" in task
    assert render_facts(FACTS) in task
    rendered = task.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(rendered) == FACTS  # the rendering is JSON


def test_messages_are_deterministic_and_concept_specific():
    a = build_messages(PROGRAM, "if_else_flip", FACTS, facts_fn=None)
    assert a == build_messages(PROGRAM, Concept.IF_ELSE_FLIP, dict(reversed(list(FACTS.items()))), facts_fn=None)
    assert a != build_messages(PROGRAM, Concept.NAME_RANDOM, FACTS, facts_fn=None)


def test_missing_facts_are_stated_not_invented():
    task = build_messages(PROGRAM, Concept.NAME_RANDOM, None, facts_fn=None)[3]["content"]
    assert "could not be analysed" in task


def test_unknown_concept_lists_valid_ones():
    with pytest.raises(ValueError, match="valid concepts are: if_else_flip"):
        system_prompt("loop_unroll")


def test_worked_examples_are_real_programs_that_behave_the_same():
    # The one-shot answers must themselves be correct counterfactuals: same results on a few inputs.
    inputs = {
        Concept.IF_ELSE_FLIP: [(-1,), (0,), (3,)],
        Concept.INDEPENDENT_SWAP: [("Ada",), ("x" * 50,)],
        Concept.DEF_USE_BREAK: [([1, 2, 3], 2), ([], 4)],
        Concept.NAME_RANDOM: [("banana",), ("xyz",)],
        Concept.NAME_SHUFFLE: [([3, 1, 2],), ([5],)],
    }
    for concept, example in _EXAMPLES.items():
        before, after = {}, {}
        exec(example.program, before)
        exec(example.answer, after)
        name = example.program.split("def ", 1)[1].split("(", 1)[0]
        assert example.program != example.answer
        for args in inputs[concept]:
            assert before[name](*args) == after[name](*args), (concept, args)


def test_extract_takes_last_python_block_and_normalises_newline():
    reply = "Look at `x`:\n```python\nx = 1\n```\nSo the answer:\n```python\ndef g():\n    return 2\n```\n"
    assert extract_code(reply).code == "def g():\n    return 2\n"
    assert extract_code("```\nprint(1)\n```").code == "print(1)\n"
    assert extract_code("```json\n{}\n```").code is None  # a facts echo is not a program


def test_extract_not_applicable_and_missing_block():
    parsed = extract_code(f"I checked.\n{NOT_APPLICABLE_MARKER} there is no else branch")
    assert parsed.not_applicable == "there is no else branch" and parsed.code is None
    missing = extract_code("def g(): return 2")
    assert missing.code is None and missing.not_applicable is None and "no ```python" in missing.error


def test_repair_message_carries_the_reason():
    message = build_repair_message("SyntaxError: invalid syntax (line 3)")
    assert message["role"] == "user" and "SyntaxError: invalid syntax (line 3)" in message["content"]


@pytest.mark.parametrize("concept", list(Concept))
def test_worked_examples_have_real_facts_for_their_concept(concept):
    # With the real analysis, each example shows the model a non-empty site list for its concept.
    from procure_trl.perturb.llm.prompts import default_facts

    example = _EXAMPLES[concept]
    entry = example.program.split("def ", 1)[1].split("(", 1)[0]
    facts = default_facts(example.program, concept, (entry,))
    assert facts is not None and facts["concept"] == concept.value
    sites = [v for k, v in facts.items() if k not in ("concept", "protected_names")]
    assert any(sites), facts


def test_protected_names_are_listed_and_unparsable_program_has_no_facts():
    from procure_trl.perturb.llm.prompts import default_facts

    task = build_messages(PROGRAM, Concept.NAME_RANDOM, None, entry_point="f", facts_fn=None,
                          protected_names=["f", "HELPER"])[3]["content"]
    assert "`HELPER`" in task
    assert default_facts("def f(:\n", Concept.NAME_RANDOM) is None


@pytest.mark.parametrize("concept", list(Concept))
def test_worked_examples_pass_the_shared_concept_checks(concept):
    # The shot teaches what the validator accepts: each example answer is valid for its concept.
    from procure_trl.perturb.llm.spans import changed_spans
    from procure_trl.problems import Problem
    from procure_trl.validation import Candidate, ValidationConfig, Validator

    example = _EXAMPLES[concept]
    entry = example.program.split("def ", 1)[1].split("(", 1)[0]
    problem = Problem(f"example/{concept.value}", example.program, "", "", entry)
    spans = tuple(tuple(s) for s in changed_spans(example.program, example.answer))
    with Validator(ValidationConfig(execute=False)) as validator:
        verdict = validator.validate_one(Candidate(problem, concept, example.answer, spans))
    assert verdict.valid, verdict.reason


@pytest.mark.parametrize(
    "concept, facts, expected",
    [
        (Concept.IF_ELSE_FLIP, {"if_else": []}, False),
        (Concept.IF_ELSE_FLIP, {"if_else": [{"line": 2}]}, True),
        (Concept.INDEPENDENT_SWAP, {"independent_pairs": []}, False),
        (Concept.DEF_USE_BREAK, {"redefinitions": [{"definitions": [{"separable": False}]}]}, False),
        (Concept.DEF_USE_BREAK, {"redefinitions": [{"definitions": [{"separable": True}]}]}, True),
        (Concept.NAME_RANDOM, {"renameable_names": {"f": ["a"]}}, True),
        (Concept.NAME_SHUFFLE, {"renameable_names": {"f": ["a"], "g": ["b"]}}, False),  # not in one scope
        (Concept.NAME_SHUFFLE, {"renameable_names": {"f": ["a", "b"]}}, True),
        (Concept.NAME_RANDOM, {"something_else": 1}, None),  # unknown shape: ask rather than skip
        (Concept.NAME_RANDOM, None, None),
    ],
)
def test_has_candidate_site(concept, facts, expected):
    from procure_trl.perturb.llm.prompts import has_candidate_site

    assert has_candidate_site(facts, concept) is expected


def test_user_concept_is_refused_by_name_not_a_key_error():
    from procure_trl.concepts import UserConcept
    from procure_trl.errors import UserError
    from procure_trl.perturb.llm.prompts import build_messages, builtin_concept

    assert builtin_concept("name_random") is Concept.NAME_RANDOM
    with pytest.raises(UserError, match="'swap_args' is user-defined"):
        build_messages("def f(a, b):\n    return a - b\n", UserConcept("swap_args"), None, "f")
