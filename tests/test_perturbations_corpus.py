"""Properties of every perturbation on the whole HumanEval (164) + MBPP (974) corpus.

For all five concepts on all 1,138 programs (static only, no execution):
* the changed spans are sorted, non-overlapping, inside the code, and every character outside them is
  the original character (the original can be split so that its unchanged pieces are exactly the
  perturbed program's text between the spans);
* the perturbed program parses; the result is deterministic; not-applicable results carry a reason;
* per concept, what the spans hold is what the concept changes (identifiers, swapped statements...).
"""

from __future__ import annotations

import ast
import json

import pytest
from mbpp_data import corpus_programs

from procure_trl.concepts import Concept
from procure_trl.perturbations import perturb


@pytest.fixture(scope="module")
def programs():
    return corpus_programs()


def unchanged_pieces_match(original: str, code: str, spans) -> bool:
    """True when ``original`` = p0 r1 p1 r2 ... rk pk where p0..pk are the texts of ``code`` between its
    changed spans (r_i: whatever was replaced). Greedy earliest matching is exact for this question."""
    pieces, cursor = [], 0
    for start, end in spans:
        pieces.append(code[cursor:start])
        cursor = end
    pieces.append(code[cursor:])
    if not original.startswith(pieces[0]) or not original.endswith(pieces[-1]):
        return False
    position = len(pieces[0])
    for piece in pieces[1:-1]:
        found = original.find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    return position <= len(original) - len(pieces[-1])


def test_unchanged_pieces_matcher_can_fail():
    assert unchanged_pieces_match("a = 1\nb = 2\n", "a = 1\nc = 2\n", [(6, 7)])
    assert not unchanged_pieces_match("a = 1\nb = 2\n", "a = 1\nc = 3\n", [(6, 7)])
    assert not unchanged_pieces_match("x = 1", "y = 1", [])


@pytest.mark.parametrize("concept", list(Concept), ids=str)
def test_spans_are_exact_on_the_corpus(programs, concept):
    applied = 0
    for task_id, source in programs:
        result = perturb(source, concept, seed=1)
        if not result.applied:
            assert result.reason and not result.changed_spans, task_id
            continue
        applied += 1
        code, spans = result.code, result.changed_spans
        assert code != source, task_id
        assert spans, task_id
        previous_end = -1
        for start, end in spans:
            assert 0 <= start < end <= len(code), (task_id, spans)
            assert start > previous_end, (task_id, spans)  # sorted, non-overlapping, not touching
            previous_end = end
        assert unchanged_pieces_match(source, code, spans), (task_id, spans)
        ast.parse(code)
        texts = [code[s:e] for s, e in spans]
        if concept in (Concept.NAME_RANDOM, Concept.NAME_SHUFFLE, Concept.DEF_USE_BREAK):
            assert all(t.isidentifier() for t in texts), (task_id, texts)
        if concept is Concept.INDEPENDENT_SWAP:
            assert sorted(texts) == sorted(result.details["statements"]), task_id
        json.dumps(result.to_dict())  # details are JSON-able
    assert applied > 0


def test_results_are_deterministic(programs):
    for task_id, source in programs[::37]:
        for concept in Concept:
            first, second = perturb(source, concept, 3), perturb(source, concept, 3)
            assert first == second, (task_id, concept)


def test_seeds_choose_among_candidates(programs):
    """Different seeds give different perturbations somewhere (the seed is actually used)."""
    for concept in Concept:
        differs = any(
            perturb(source, concept, 0).code != perturb(source, concept, 1).code for _, source in programs[:120]
        )
        assert differs, concept
