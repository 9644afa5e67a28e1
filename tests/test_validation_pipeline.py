"""The validation pipeline end to end on a handful of hand-made candidates (executes in subprocesses)."""

from __future__ import annotations

import pytest

from procure_trl.concepts import Concept
from procure_trl.problems import Problem
from procure_trl.validation import Candidate, ValidationConfig, Validator

PROBLEM = Problem(
    task_id="toy/1",
    prompt="def total(xs):\n",
    solution="    acc = 0\n    for x in xs:\n        acc += x\n    return acc\n",
    tests="assert total([1, 2, 3]) == 6\nassert total([]) == 0\n",
    entry_point="total",
)
BROKEN = Problem("toy/2", "def one():\n", "    return 2\n", "assert one() == 1\n", "one")


def _spans(code: str, word: str) -> tuple[tuple[int, int], ...]:
    out, start = [], 0
    while (found := code.find(word, start)) >= 0:
        out.append((found, found + len(word)))
        start = found + len(word)
    return tuple(out)


@pytest.fixture(scope="module")
def verdicts():
    renamed = PROBLEM.program.replace("acc", "s_q")
    slow = PROBLEM.program.replace("    return acc\n", "    while True:\n        pass\n    return acc\n")
    candidates = [
        Candidate(PROBLEM, Concept.NAME_RANDOM, renamed, _spans(renamed, "s_q")),          # 0 valid
        Candidate(PROBLEM, Concept.NAME_RANDOM, renamed, _spans(renamed, "s_q")),          # 1 duplicate
        Candidate(PROBLEM, Concept.NAME_SHUFFLE, PROBLEM.program, None),                   # 2 duplicate of original
        Candidate(PROBLEM, Concept.NAME_RANDOM, PROBLEM.program + "# note\n", None),       # 3 no-op
        Candidate(PROBLEM, Concept.NAME_RANDOM, "def total(xs:\n", None),                  # 4 parse
        Candidate(PROBLEM, Concept.NAME_RANDOM, renamed.replace("s_q = 0", "s_q = 1"), None),  # 5 concept
        Candidate(PROBLEM, Concept.NAME_RANDOM, PROBLEM.program.replace("acc", "t_q"), ((0, 1),)),  # 6 spans
        Candidate(
            PROBLEM, Concept.NAME_RANDOM, PROBLEM.program.replace("xs", "total"), None
        ),  # 7 concept: shadows entry
        Candidate(BROKEN, Concept.NAME_RANDOM, "def one():\n    return 2 + 0\n", None),      # 8 concept (not a rename)
        Candidate(BROKEN, Concept.IF_ELSE_FLIP, "def one():\n    return (2)\n", None),        # 9 no-op
        Candidate(PROBLEM, Concept.INDEPENDENT_SWAP, slow, None),                           # 10 concept (added code)
    ]
    with Validator(ValidationConfig(timeout=5.0, num_workers=2)) as validator:
        first = validator.validate(candidates)
        # the validator remembers candidates across calls
        again = validator.validate([candidates[0]])
    return first, again


def test_valid_candidate(verdicts):
    first, _ = verdicts
    assert first[0].valid and first[0].stage == "passed" and first[0].reason == ""


@pytest.mark.parametrize("index, stage, words", [
    (1, "duplicate", "the accepted name_random candidate"),
    (2, "duplicate", "the original program"),
    (3, "no-op", "only formatting or comments"),
    (4, "parse", "does not parse"),
    (5, "concept", "not a pure renaming"),
    (6, "spans", "changed spans"),
    (7, "concept", "name_random check"),
    (8, "concept", "not a pure renaming"),
    (9, "no-op", "same program"),
    (10, "concept", "independent_swap check"),
])
def test_rejections_name_their_stage(verdicts, index, stage, words):
    verdict = verdicts[0][index]
    assert not verdict.valid and verdict.status == "rejected"
    assert verdict.stage == stage and words in verdict.reason, verdict


def test_dedup_across_calls(verdicts):
    assert verdicts[1][0].stage == "duplicate"


def test_a_rejected_candidate_makes_no_duplicate():
    # The same text first as a name_shuffle candidate (rejected: shuffling needs the program's own names),
    # then as a name_random one: only accepted candidates count, so the second is kept.
    renamed = PROBLEM.program.replace("acc", "w_q")
    with Validator(ValidationConfig(execute=False)) as validator:
        shuffle, rand, rand_again = validator.validate([
            Candidate(PROBLEM, Concept.NAME_SHUFFLE, renamed, None),
            Candidate(PROBLEM, Concept.NAME_RANDOM, renamed, None),
            Candidate(PROBLEM, Concept.NAME_RANDOM, renamed, None),
        ])
        unchecked = validator.validate([Candidate(PROBLEM, Concept.NAME_RANDOM, renamed, None)], deduplicate=False)
    assert shuffle.stage == "concept" and rand.valid
    assert rand_again.stage == "duplicate" and "accepted name_random" in rand_again.reason
    assert unchecked[0].valid  # deduplicate=False leaves the decision to the caller


def test_broken_originals_are_reported_as_such():
    timeout_problem = Problem("toy/3", "def f(a):\n", "    b = a\n    return b\n",
                              "assert f(1) == 1\nwhile True:\n    pass\n", "f")
    broken = Problem("toy/4", "def g(n):\n", "    k = n\n    return k\n", "assert g(2) == 3\n", "g")
    with Validator(ValidationConfig(timeout=1.0, num_workers=2)) as validator:
        out = validator.validate([
            Candidate(PROBLEM, Concept.NAME_RANDOM, PROBLEM.program.replace("acc", "r_q"), None),
            Candidate(broken, Concept.NAME_RANDOM, broken.program.replace("k", "m_q"), None),
            Candidate(timeout_problem, Concept.NAME_RANDOM, timeout_problem.program.replace("b", "c_q"), None),
        ])
    assert out[0].valid
    assert out[1].stage == "original" and "fails its own tests" in out[1].reason and "AssertionError" in out[1].reason
    assert out[2].stage == "original" and "timed out" in out[2].reason


def test_candidate_that_fails_its_tests_is_rejected_with_the_error():
    # renaming a module-level name the tests read passes the AST check; only running the tests catches it
    problem = Problem("toy/5", "LIMIT = 3\ndef f():\n", "    return LIMIT\n", "assert f() == LIMIT\n", "f")
    renamed = problem.program.replace("LIMIT", "cap_q")
    with Validator(ValidationConfig(timeout=5.0, num_workers=1)) as validator:
        (verdict,) = validator.validate([Candidate(problem, Concept.NAME_RANDOM, renamed, None)])
    assert verdict.stage == "execution" and "NameError" in verdict.reason, verdict


def test_no_execution_mode():
    renamed = PROBLEM.program.replace("acc", "z_q")
    with Validator(ValidationConfig(execute=False)) as validator:
        (verdict,) = validator.validate([Candidate(PROBLEM, Concept.NAME_RANDOM, renamed, None)])
    assert verdict.valid and verdict.stage == "passed"
