"""Changed spans from a character diff: cover every change, grouped to whole words, disjoint."""

from __future__ import annotations

import random

import pytest

from procure_trl.perturb.llm.spans import changed_spans


def outside(candidate: str, spans) -> str:
    out, cursor = [], 0
    for start, end in spans:
        out.append(candidate[cursor:start])
        cursor = end
    out.append(candidate[cursor:])
    return "".join(out)


def is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


def test_rename_marks_whole_new_identifiers():
    a = "count = 0\nfor ch in text:\n    count += 1\n"
    b = "v_x7 = 0\nfor q_m2 in text:\n    v_x7 += 1\n"
    spans = changed_spans(a, b)
    assert [b[s:e] for s, e in spans] == ["v_x7", "q_m2", "v_x7"]


def test_if_else_flip_marks_negation_and_swapped_bodies():
    a = "if x >= 0:\n    y = 1\nelse:\n    y = 2\n"
    b = "if not (x >= 0):\n    y = 2\nelse:\n    y = 1\n"
    texts = [b[s:e] for s, e in changed_spans(a, b)]
    assert "".join(texts).replace(" ", "") == "not()21"


def test_identical_and_pure_deletion():
    assert changed_spans("x = 1\n", "x = 1\n") == []
    spans = changed_spans("a = 1\nb = 2\n", "a = 1\n")
    assert spans and all(0 <= s < e <= len("a = 1\n") for s, e in spans)


@pytest.mark.parametrize("seed", range(30))
def test_random_edits_properties(seed):
    rng = random.Random(seed)
    alphabet = "ab_ (x)\n=1"
    a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
    b = list(a)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(b))
        op = rng.choice(["ins", "del", "sub"])
        if op == "ins":
            b.insert(pos, rng.choice(alphabet))
        elif b and pos < len(b):
            if op == "del":
                del b[pos]
            else:
                b[pos] = rng.choice(alphabet)
    b = "".join(b)
    spans = changed_spans(a, b)
    # sorted, disjoint, non-empty, in range
    assert all(0 <= s < e <= len(b) for s, e in spans)
    assert all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))
    # what lies outside the spans is unchanged original text
    assert is_subsequence(outside(b, spans), a)
    if a != b and b:
        assert spans
