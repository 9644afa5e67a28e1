"""Changed character spans of an LLM-written program, recovered by diffing it against the original.

A rule-based perturbation knows which characters it edited; a model answer does not say. The spans are
therefore read off a character-level diff (:class:`difflib.SequenceMatcher` with ``autojunk=False``: its
default treats frequent characters such as spaces as junk on inputs over 200 characters, which splits
edits at odd places) and then grouped so that they describe edits a reader would name:

1. each inserted or replaced run of the candidate is one span ``[start, end)`` into the candidate;
2. a span that starts or ends inside an identifier or number is widened to the whole word: a diff of
   ``count`` -> ``v_x7`` may keep a matching ``c``, but the edit is the whole new name;
3. a pure deletion has no characters in the candidate; it is marked by the characters on either side
   of the point where text was removed, so the token masks still see the edit;
4. overlapping or touching spans are merged.

Spans are half-open character offsets into the candidate (the ``code`` column), sorted, disjoint.
"""

from __future__ import annotations

import difflib


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def changed_spans(original: str, candidate: str) -> list[list[int]]:
    """Sorted, disjoint ``[start, end)`` spans of ``candidate`` that differ from ``original``."""
    matcher = difflib.SequenceMatcher(a=original, b=candidate, autojunk=False)
    raw: list[tuple[int, int]] = []
    n = len(candidate)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if j1 == j2:  # deletion: mark the neighbours of the removal point
            j1, j2 = max(j1 - 1, 0), min(j2 + 1, n)
            if j1 == j2:
                continue  # the candidate is empty: nothing to mark
        raw.append((j1, j2))

    widened = []
    for start, end in raw:
        while start > 0 and _is_word(candidate[start - 1]) and _is_word(candidate[start]):
            start -= 1
        while end < n and _is_word(candidate[end - 1]) and _is_word(candidate[end]):
            end += 1
        widened.append((start, end))

    merged: list[list[int]] = []
    for start, end in sorted(widened):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged
